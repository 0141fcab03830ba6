#include "master/master.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "common/daemon.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "master/notifier.hpp"
#include "version.hpp"

namespace by::master {

Master::Master(sd_event* event, sd_bus* bus, std::string config_path, std::string state_directory)
    : event_(event), bus_(bus), config_path_(std::move(config_path)), state_directory_(std::move(state_directory)) {}

Master::~Master() = default;

bool Master::start(std::string& error) {
    auto loaded = config::load_for_master(config_path_);
    if (!loaded.config) {
        error = "invalid configuration:";
        for (const auto& e : loaded.errors) {
            error += "\n  " + e.str();
        }
        return false;
    }
    if (mkdir((state_directory_ + "/logs").c_str(), 0750) < 0 && errno != EEXIST) {
        error = "cannot create " + state_directory_ + "/logs: " + std::strerror(errno);
        return false;
    }
    // One master per state directory, and the bus name before any state is
    // touched: a second master must not "recover" the first one's builds.
    if (!(state_lock_ = lock_state_directory(state_directory_, "buildyard-masterd", error))) return false;
    int r = register_master_objects(*this, bus_, slots_);
    if (r >= 0) r = register_worker_objects(*this, bus_, slots_);
    if (r >= 0) r = register_link_object(*this, bus_, slots_);
    if (r < 0) {
        error = std::string("cannot register the bus objects: ") + std::strerror(-r);
        return false;
    }
    r = sd_bus_request_name(bus_, bus::master_name, 0);
    if (r < 0) {
        error = fmt::format("cannot own {} on the system bus: {}{}", bus::master_name, std::strerror(-r),
                            r == -EEXIST ? " (is another buildyard-masterd running?)" : "");
        return false;
    }
    store_ = open_sqlite_store(state_directory_, error);
    if (!store_) {
        return false;
    }
    if (!metrics_.listen(loaded.config->master.metrics, error)) {
        return false;
    }
    notifier_ = std::make_unique<Notifier>(event_, *store_, metrics_, config_, *this, state_directory_);
    if (!notifier_->start(error)) {
        return false;
    }
    latent_ = std::make_unique<LatentControl>(*this, *store_, metrics_, event_, bus_, LatentControl::Timeouts{});
    apply_config(std::move(*loaded.config));
    if (int lr = latent_->start(); lr < 0) {
        error = std::string("cannot set up latent workers: ") + std::strerror(-lr);
        return false;
    }

    // Builds that were running (or waiting for cleanup) when the master last
    // stopped never reported back: end them "retry" and queue their reruns,
    // in one commit. Pending ones just wait.
    std::vector<Build> builds = store_->load_unfinished();
    std::vector<Build> interrupted;
    std::vector<Retry> retries;
    const uint64_t now = bus::now_realtime_usec();
    for (Build& b : builds) {
        if (b.state == BuildState::running || b.state == BuildState::cleanup) {
            Retry r{b, {}};
            r.next = *retry_build(r.old, now);  // a running build always has one
            retries.push_back(std::move(r));
            interrupted.push_back(std::move(b));
        }
    }
    std::erase_if(builds, [](const Build& b) { return b.state != BuildState::pending; });
    if (!retries.empty() && store_->record_retries(retries)) {
        for (Retry& r : retries) {
            log::write(log::Level::notice,
                       fmt::format("build {} of {} was running on {} when the master stopped; rerunning it as build {}",
                                   r.old.id, r.old.builder, r.old.worker, r.next.id),
                       {{"BUILDYARD_BUILD", std::to_string(r.old.id)}, {"BUILDYARD_BUILDER", r.old.builder},
                        {"BUILDYARD_WORKER", r.old.worker}});
            builds.push_back(std::move(r.next));
        }
    } else if (!retries.empty()) {
        // The store takes no writes (a full disk): the builds stay running,
        // as stored, until their requeue is.
        for (Build& b : interrupted) {
            builds_.add_unstored_end(std::move(b), Ending{Result::retry, -1, now, "the master stopped while it ran"});
        }
        store_failed(fmt::format("cannot requeue build {}", retries.front().old.id));
    }
    for (Build& b : builds) {
        builds_.add_pending(std::move(b));
    }
    // The first flush counts every builder's queue, for the metrics.
    for (const auto& [name, b] : config_.builders) {
        dirty_builders_.insert(name);
    }
    for (const auto& [id, ab] : builds_.all_active()) {
        dirty_builders_.insert(ab->build.builder);
    }

    sd_event_source* s = nullptr;
    r = sd_event_add_defer(event_, &s, &Master::on_changes_deferred, this);
    if (r < 0) {
        error = std::string("cannot add an event source: ") + std::strerror(-r);
        return false;
    }
    changes_source_.reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    r = sd_event_add_defer(event_, &s, &Master::on_dispatch_deferred, this);
    if (r < 0) {
        error = std::string("cannot add an event source: ") + std::strerror(-r);
        return false;
    }
    dispatch_source_.reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    log::info("master '{}' started with {} workers and {} builders; {} builds pending",
              config_.master.name, config_.workers.size(), config_.builders.size(), builds_.pending());
    return true;
}

Worker& Master::add_worker(const config::Worker& cfg) {
    Worker& w = workers_.add(cfg, store_->load_worker(cfg.name));
    if (w.last_connected > w.last_disconnected) {
        // It was attached when the master stopped, and that link is gone:
        // record its end now, or every restart would restart the worker's
        // missing clock.
        workers_.set_last_disconnected(w, bus::now_realtime_usec());
        save_worker(w);
    }
    metrics_.worker_shown(cfg.name, w.shown, bus::now_realtime_usec());
    return w;
}

void Master::apply_config(config::Config&& c) {
    for (const auto& w : c.warnings) {
        log::warning("{}", w.str());  // on start and on each reload, like the errors
    }
    // Workers that are gone from the config get no new builds and leave once
    // their running builds end; new ones appear; changed ones take their new
    // settings for the next build.
    for (auto& [name, w] : workers_.all()) {
        auto it = c.workers.find(name);
        if (it == c.workers.end() && w->configured) {
            log::notice("worker {} was removed from the configuration", name);
        }
        workers_.configure(*w, it == c.workers.end() ? nullptr : &it->second);
    }
    for (const auto& [name, cfg] : c.workers) {
        if (!workers_.find(name)) {
            add_worker(cfg);
        }
    }
    for (const auto& [name, b] : config_.builders) {
        if (!c.builders.count(name) && builds_.pending(name) > 0) {
            log::warning("builder {} was removed from the configuration; its {} pending builds wait until it returns",
                         name, builds_.pending(name));
        }
    }
    config_ = std::move(c);
    // Settling may stop and forget a worker, so walk names, not the map.
    std::vector<std::string> removed;
    for (auto& [name, w] : workers_.all()) {
        if (!w->configured) {
            removed.push_back(name);
        }
    }
    for (const auto& name : removed) {
        if (Worker* w = find_worker(name); w && !w->attached) {
            forget_worker(name);
        } else if (w) {
            settle_worker(*w);
        }
    }
    if (latent_) {
        latent_->set_lease(config_.master.latent_lease_usec);
        latent_->reconfigure();
    }
    if (notifier_) {
        notifier_->reconfigure();
        for (auto& [name, w] : workers_.all()) {
            refresh_missing(*w);
        }
    }
}

void Master::stopping() {
    if (latent_) {
        latent_->master_stopping();
    }
}

const std::string* Master::worker_key(const Worker& w) const {
    if (w.cfg.type == config::WorkerType::latent) {
        return latent_ ? latent_->current_token(w) : nullptr;
    }
    return w.cfg.password.empty() ? nullptr : &w.cfg.password;
}

std::vector<std::string> Master::earlier_tokens(const std::string& name) const {
    const Worker* w = workers_.find(name);
    if (!w || !w->latent) {
        return {};
    }
    const LatentSide& side = *w->latent;
    return {side.earlier_tokens.begin(), side.earlier_tokens.end()};
}

Status Master::reload() {
    auto loaded = config::load_for_master(config_path_);
    if (!loaded.config) {
        // The reply lists only the errors (buildyard-dbus(7)); callers say
        // what that means (buildyardctl: "the new configuration was rejected").
        std::string errors;
        for (const auto& e : loaded.errors) {
            errors += (errors.empty() ? "" : "\n") + e.str();
        }
        log::error("configuration not reloaded; the old one stays in force:\n{}", errors);
        return Status::fail(bus::error::ConfigInvalid, errors);
    }
    for (const auto& [name, b] : config_.builders) {
        dirty_builders_.insert(name);  // those that go are forgotten
    }
    std::string metrics_error;
    if (!metrics_.listen(loaded.config->master.metrics, metrics_error)) {
        log::error("{}; metrics stay on {}", metrics_error,
                   metrics_.address().empty() ? std::string("nothing") : metrics_.address());
    }
    apply_config(std::move(*loaded.config));
    for (auto& [name, w] : workers_.all()) {
        emit_worker(*w);
    }
    for (const auto& [name, b] : config_.builders) {
        std::string path = bus::path_encode(bus::builder_prefix, name);
        sd_bus_emit_properties_changed(bus_, path.c_str(), bus::builder_iface, "Workers", "Steps", nullptr);
        dirty_builders_.insert(name);
    }
    log::info("configuration reloaded: {} workers, {} builders", config_.workers.size(), config_.builders.size());
    if (reloaded_) {
        reloaded_(config_);
    }
    counters_changed();
    dispatch();
    return Status::ok();
}

void Master::forget_worker(const std::string& name) {
    Worker* w = workers_.find(name);
    if (!w) {
        return;
    }
    if (latent_) {
        latent_->forget(*w);
    }
    metrics_.worker_forgotten(name);
    workers_.forget(name);
}

Worker* Master::find_worker(const std::string& name) { return workers_.find(name); }

const config::Builder* Master::find_builder(const std::string& name) const {
    auto it = config_.builders.find(name);
    return it == config_.builders.end() ? nullptr : &it->second;
}

const Build* Master::find_build(uint64_t id) { return builds_.find(id, *store_); }

std::vector<Build> Master::list_builds(uint64_t before, uint64_t limit) {
    // One reply never holds the whole history: at most list_builds_max.
    return builds_.list(*store_, before, limit == 0 ? list_builds_max : std::min(limit, list_builds_max));
}

std::string Master::describe() const {
    nlohmann::json j;
    j["version"] = BUILDYARD_VERSION;
    j["name"] = config_.master.name;
    j["connected_workers"] = connected_workers();
    j["running_builds"] = builds_.running();
    j["pending_builds"] = builds_.pending();
    j["config_files"] = config_.files;
    workers_.describe(j["workers"]);
    auto& bs = j["builders"] = nlohmann::json::object();
    for (const auto& [name, b] : config_.builders) {
        bs[name] = {{"workers", b.workers}, {"steps", b.steps}, {"pending_builds", builds_.pending(name)}};
    }
    auto& active = j["active_builds"] = nlohmann::json::array();
    for (const auto& [id, ab] : builds_.all_active()) {
        const Build& b = ab->build;
        active.push_back({{"id", b.id},
                          {"builder", b.builder},
                          {"worker", b.worker},
                          {"state", to_string(b.state)},
                          {"submitted_at", b.submitted_at},
                          {"started_at", b.started_at}});
    }
    return text::json_dump(j);
}

void Master::request_dispatch() {
    if (dispatch_source_) {
        sd_event_source_set_enabled(dispatch_source_.get(), SD_EVENT_ONESHOT);
    }
}

int Master::on_dispatch_deferred(sd_event_source*, void* userdata) {
    static_cast<Master*>(userdata)->settle_and_dispatch();
    return 0;
}

void Master::settle_and_dispatch() {
    if (dispatch_source_) {
        sd_event_source_set_enabled(dispatch_source_.get(), SD_EVENT_OFF);
    }
    settle_workers();
    dispatch();
}

void Master::dispatch_now() {
    // Settling may stop a worker and close its link: that waits for the
    // deferred source, out of the caller's handler.
    if (dispatch_source_ && unsettled_.empty()) {
        sd_event_source_set_enabled(dispatch_source_.get(), SD_EVENT_OFF);
    }
    dispatch();
}

}  // namespace by::master
