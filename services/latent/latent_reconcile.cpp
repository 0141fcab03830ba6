// The reaper: at start-up, every minute and on Reap(), list everything each
// backend holds with this master's tag and remove what belongs to no live
// start. Untagged things and other masters' things are never listed, so
// never touched.
#include <cstring>

#include <systemd/sd-daemon.h>

#include "common/bus.hpp"
#include "common/log.hpp"
#include "latent/latent_manager.hpp"

namespace by::latent {

int LatentManager::reap(sd_bus_message* m) {
    request_reap(MessagePtr(sd_bus_message_ref(m)));
    return 1;
}

void LatentManager::request_reap(MessagePtr caller) {
    if (pass_) {
        // The pass under way decided on an older picture; take the next one.
        pass_requested_ = true;
        if (caller) {
            reap_callers_next_.push_back(std::move(caller));
        }
        return;
    }
    std::vector<MessagePtr> callers;
    if (caller) {
        callers.push_back(std::move(caller));
    }
    begin_pass(std::move(callers));
}

void LatentManager::begin_pass(std::vector<MessagePtr> callers) {
    // From a Pass{}, not emplace(): clang (14) decides, inside the class,
    // that Pass (default member initializers) is not default-constructible.
    pass_.emplace(Pass{});
    pass_->callers = std::move(callers);
    for (const auto& [start, inst] : instances_) {
        if (inst->dead) {
            pass_->dead.push_back(start);
        } else {
            pass_->live_at_list.insert(start);
        }
    }
    const std::string master = config_.master.name;
    for (const auto& [backend_name, workers] : latent_workers_by_backend(config_)) {
        auto backend = backend_for(backend_name);
        if (!backend) {
            log::error("cannot look for leaks of backend {}: it is not available in this build", backend_name);
            continue;
        }
        // Copies: the thread must not see a reload.
        std::vector<std::shared_ptr<const config::Worker>> copies;
        for (const config::Worker* w : workers) {
            copies.push_back(std::make_shared<const config::Worker>(*w));
        }
        const std::string name = backend_name;
        int r = calls_.run<std::vector<Found>>(
            timing_.call,
            [backend, master, copies](const Cancelled& c) {
                std::vector<const config::Worker*> ws;
                for (const auto& w : copies) {
                    ws.push_back(w.get());
                }
                return backend->list(master, ws, c);
            },
            [this, name, copies, backend](Outcome<std::vector<Found>> out) {
                on_listed(name, std::move(out), copies, backend);
            },
            [this, name] {
                log::error("backend {} did not list its instances within {} s; no leaks reaped from it this time",
                           name, timing_.call / 1e6);
                list_done();
            },
            [](Outcome<std::vector<Found>>) {});
        if (r < 0) {
            log::error("cannot list the instances of backend {}: {}", backend_name, std::strerror(-r));
            continue;
        }
        ++pass_->lists_pending;
    }
    if (pass_->lists_pending == 0) {
        end_pass();
    }
}

void LatentManager::on_listed(const std::string& backend, Outcome<std::vector<Found>> result,
                              const std::vector<std::shared_ptr<const config::Worker>>& workers,
                              const std::shared_ptr<Backend>& b) {
    if (!result.ok()) {
        log::error("cannot list the instances of backend {}: {}", backend, result.error);
    } else {
        for (auto& f : leaks(result.value, pass_->live_at_list, [this](const std::string& s) { return is_live(s); })) {
            // Remove it through its own worker's settings if that worker is
            // still configured, else through any worker of the backend that
            // listed it.
            std::shared_ptr<const config::Worker> w = workers.front();
            for (const auto& c : workers) {
                if (c->name == f.tag.worker) {
                    w = c;
                }
            }
            pass_->removals.push_back(Removal{std::move(f), w, b});
        }
    }
    list_done();
}

void LatentManager::list_done() {
    if (--pass_->lists_pending == 0) {
        remove_next();
    }
}

void LatentManager::remove_next() {
    if (pass_->next == pass_->removals.size()) {
        end_pass();
        return;
    }
    const Removal& rm = pass_->removals[pass_->next++];
    auto found = rm.found;
    auto wcfg = rm.worker;
    auto backend = rm.backend;
    int r = calls_.run<bool>(
        shutdown_grace_usec(*wcfg) + timing_.destroy,
        [backend, found, wcfg](const Cancelled& c) { return backend->remove(found, wcfg.get(), c); },
        [this, found](Outcome<bool> out) {
            const auto& t = found.tag;
            if (out.ok()) {
                ++pass_->reaped;
                log::write(log::Level::warning,
                           fmt::format("reaped leaked {} {} of worker {} (start {})", found.kind, found.id, t.worker,
                                       t.start),
                           {{"BUILDYARD_WORKER", t.worker}, {"BUILDYARD_START", t.start},
                            {"MESSAGE_ID", std::string(log::id::leak_reaped)}});
            } else {
                log::write(log::Level::err,
                           fmt::format("cannot reap leaked {} {} of worker {} (start {}): {}", found.kind, found.id,
                                       t.worker, t.start, out.error),
                           {{"BUILDYARD_WORKER", t.worker}, {"BUILDYARD_START", t.start}});
            }
            remove_next();
        },
        [this, found] {
            log::write(log::Level::err,
                       fmt::format("the removal of leaked {} {} of worker {} (start {}) did not finish in time",
                                   found.kind, found.id, found.tag.worker, found.tag.start),
                       {{"BUILDYARD_WORKER", found.tag.worker}, {"BUILDYARD_START", found.tag.start}});
            remove_next();
        },
        [](Outcome<bool>) {});
    if (r < 0) {
        log::error("cannot remove leaked {} {}: {}", found.kind, found.id, std::strerror(-r));
        remove_next();
    }
}

void LatentManager::end_pass() {
    Pass pass = std::move(*pass_);
    pass_.reset();
    // What the dead starts made has been listed and removed like any leak.
    for (const auto& start : pass.dead) {
        auto it = instances_.find(start);
        if (it != instances_.end() && it->second->dead) {
            instances_.erase(it);
            if (!store_.remove(start)) {
                log::error("cannot delete start {}: {}", start, store_.error());
            }
        }
    }
    if (pass.reaped > 0) {
        reaped_leaks_ += pass.reaped;
        last_reaped_at_ = bus::now_realtime_usec();
        log::notice("reaped {} leaked instances or overlays ({} since latentd started)", pass.reaped, reaped_leaks_);
    }
    for (const auto& call : pass.callers) {
        sd_bus_reply_method_return(call.get(), "u", static_cast<uint32_t>(pass.reaped));
    }
    changed();
    if (!is_ready_) {
        is_ready_ = true;
        if (ready_) {
            ready_();
        }
    }
    if (pass_requested_) {
        pass_requested_ = false;
        begin_pass(std::move(reap_callers_next_));
        reap_callers_next_.clear();
    }
}

}  // namespace by::latent
