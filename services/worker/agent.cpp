// The worker daemon around its builds: start-up, reload, the link's states,
// the ways it stops (signals, Agent1.Stop and Remove, a lost master) and its
// status line. agent_builds.cpp starts, cancels and ends the builds.
#include "worker/agent.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "common/log.hpp"
#include "worker/info.hpp"
#include "worker/remote_link.hpp"

namespace by::worker {

namespace {

std::string builds_running(size_t n) {
    if (n == 0) {
        return "no builds running";
    }
    return fmt::format("{} build{} running", n, n == 1 ? "" : "s");
}

}  // namespace

Agent::Agent(sd_event* event, config::WorkerSelf self, Options options)
    : event_(event),
      self_(std::move(self)),
      options_(std::move(options)),
      link_() {
    if (options_.basedir) {
        self_.basedir = *options_.basedir;
    }
    isolation_ = make_isolation(event, self_.name, self_.basedir, self_.units);
    Link::Events events{
        .info =
            [this] {
                auto info = host_info(self_);
                info["isolation"] = isolation_->kind();
                return info;
            },
        .state_changed = [this] { link_state_changed(); },
        .master_lost = [this] { master_lost(); },
        .fatal =
            [this](int status) {
                kill_all_builds();
                exit(status);
            },
    };
    if (self_.local()) {
        link_ = std::make_unique<MasterLink>(event, self_.name, std::move(events));
    } else {
        link_ = std::make_unique<RemoteLink>(event, self_, std::move(events));
    }
}

Agent::~Agent() {
    // Runners first: their destructors kill the steps while the loop is alive.
    builds_.clear();
}

int Agent::start() {
    // A build that was running when an earlier run of this worker died may
    // still have processes; the master reruns it once we attach, so they
    // must be gone first.
    const int r = isolation_->clean_leftovers([this] {
        if (start_link() < 0) {
            exit(1);  // start_link() said why
        }
    });
    if (r == 0) {
        sd_notify(0, "STATUS=stopping what an earlier run of this worker left");
        return 0;
    }
    return start_link();
}

int Agent::start_link() {
    // A remote link exports Agent1 again on each new connection.
    return link_->start([this](sd_bus* bus) { return export_agent(bus, *this, agent_object_); });
}

void Agent::reload() {
    if (options_.latent) {
        // Its identity belongs to one start of the instance; nothing to re-read.
        log::notice("SIGHUP ignored: a latent worker has no configuration file");
        return;
    }
    auto loaded = config::load_worker(self_.name, options_.config_file, options_.config_required,
                                      config::current_environment());
    if (!loaded.errors.empty() || !loaded.config) {
        for (const auto& e : loaded.errors) {
            log::error("{}", e.str());
        }
        log::error("keeping the previous configuration: {} has errors", options_.config_file);
        return;
    }
    config::WorkerSelf next = std::move(*loaded.config);
    if (options_.basedir) {
        next.basedir = *options_.basedir;
    }
    // The link was made with these; a new one is made only by a restart.
    std::string restart_keys;
    auto keep = [&](bool changed, const char* key, auto& value, const auto& old) {
        if (changed) {
            restart_keys += (restart_keys.empty() ? "" : ", ") + std::string(key);
            value = old;
        }
    };
    keep(next.masters != self_.masters, "master", next.masters, self_.masters);
    const bool remote = !self_.local();
    keep(remote && next.password != self_.password, "password", next.password, self_.password);
    keep(remote && next.reconnect_max != self_.reconnect_max, "reconnect_max", next.reconnect_max,
         self_.reconnect_max);
    // The link's TLS context and pins were made at start too.
    keep(remote && next.tls != self_.tls, "tls", next.tls, self_.tls);
    keep(remote && next.master_fingerprints != self_.master_fingerprints, "master_fingerprint",
         next.master_fingerprints, self_.master_fingerprints);
    keep(remote && next.tls_ca_file != self_.tls_ca_file, "tls_ca_file", next.tls_ca_file, self_.tls_ca_file);
    keep(remote && next.tls_certificate != self_.tls_certificate, "tls_certificate", next.tls_certificate,
         self_.tls_certificate);
    keep(remote && next.tls_key != self_.tls_key, "tls_key", next.tls_key, self_.tls_key);
    keep(next.units != self_.units, "isolation", next.units, self_.units);
    if (!restart_keys.empty()) {
        log::warning("{} changed in {} but takes effect only when the worker restarts; the old value stays "
                     "until then",
                     restart_keys, options_.config_file);
    }
    self_ = std::move(next);
    ::umask(self_.umask);
    log::info("reloaded {}; the next builds use basedir {}, kill_timeout {} s, umask {:04o}", options_.config_file,
              self_.basedir, self_.kill_timeout, static_cast<unsigned>(self_.umask));
}

void Agent::terminate(const std::string& signal_name) {
    if (stopping_) {
        log::notice("{} again: killing the remaining builds", signal_name);
        kill_all_builds();
        exit(0);
        return;
    }
    log::notice("stopping ({})", signal_name);
    link_->detach(fmt::format("worker stopping ({})", signal_name));
    begin_stopping();
}

int Agent::set_keepalive(uint64_t interval, sd_bus_error* error) {
    int r = link_->set_keepalive(interval);
    if (r < 0) {
        return sd_bus_error_set_errnof(error, -r, "Cannot take a keepalive interval: %s", std::strerror(-r));
    }
    return 0;
}

void Agent::shut_down_gracefully(const std::string& signal_name) {
    if (stopping_ || draining_) {
        log::notice("{}: already shutting down", signal_name);
        return;
    }
    draining_ = true;
    log::write(log::Level::notice,
               fmt::format("graceful shutdown ({}): no new builds; exiting once {} end", signal_name,
                           builds_running(builds_.size())),
               {{"BUILDYARD_WORKER", self_.name}});
    ask_master_to_drain();
}

// While draining: the master stops us when we are idle; without a master,
// we stop ourselves once the builds here have ended.
void Agent::ask_master_to_drain() {
    const int r = link_->request_shutdown();
    if (r >= 0) {
        update_status();
        return;
    }
    log::notice("cannot ask the master ({}); exiting once the running builds end", std::strerror(-r));
    if (builds_.empty()) {
        link_->detach("graceful shutdown");
        begin_stopping();
    }
}

void Agent::stop(const std::string& reason) {
    if (stopping_) {
        return;  // Remove came first (a master sends both, for older workers)
    }
    log::write(log::Level::notice, fmt::format("master asked us to stop: {}", reason),
               {{"BUILDYARD_WORKER", self_.name}});
    begin_stopping();
}

void Agent::remove(const std::string& reason) {
    log::write(log::Level::warning,
               fmt::format("the master removed worker {} from its configuration ({}); stopping with exit status {}",
                           self_.name, reason, exit_removed),
               {{"BUILDYARD_WORKER", self_.name}});
    removed_ = true;
    if (!stopping_) {
        begin_stopping();
    } else {
        update_status();
    }
}

void Agent::link_state_changed() {
    auto state = link_->state();
    if (!ready_sent_ && (state == Link::State::attached || state == Link::State::waiting)) {
        // Also when waiting: a master that is down must not fail our start.
        ready_sent_ = true;
        sd_notify(0, "READY=1");
    }
    update_status();
}

void Agent::master_lost() {
    // The new master has marked our builds for retry; finishing them here
    // would only compete with the retries for the same build directories.
    if (!builds_.empty()) {
        log::write(log::Level::warning,
                   fmt::format("killing {} running build{} without reporting them", builds_.size(),
                               builds_.size() == 1 ? "" : "s"),
                   {{"BUILDYARD_WORKER", self_.name}});
    }
    kill_all_builds();
    if (stopping_ && !exited_) {
        exit(0);
    } else if (draining_ && !exited_) {
        // Its builds are the new master's to rerun: nothing is left to finish.
        begin_stopping();
    }
}

void Agent::begin_stopping() {
    stopping_ = true;
    isolation_->stopping();
    link_->close();
    for (auto& [id, runner] : builds_) {
        runner->cancel();
    }
    update_status();
    if (builds_.empty()) {
        exit(0);
    }
}

void Agent::exit(int status) {
    if (exited_) {
        return;
    }
    exited_ = true;
    if (removed_ && status == 0) {
        status = exit_removed;
        sd_notifyf(0, "STOPPING=1\nSTATUS=removed from the master's configuration (exit status %d)", status);
    } else {
        sd_notify(0, "STOPPING=1");
    }
    sd_event_exit(event_, status);
}

void Agent::update_status() {
    std::string status;
    if (stopping_) {
        status = fmt::format("{}stopping, {}", removed_ ? "removed from the master's configuration; " : "",
                             builds_running(builds_.size()));
    } else {
        switch (link_->state()) {
        case Link::State::idle:
            status = ready_sent_ ? "detached" : "starting";
            break;
        case Link::State::attaching:
            status = fmt::format("attaching to {} as {}", link_->master_label(), self_.name);
            break;
        case Link::State::attached:
            status = fmt::format("attached to {} as {}, {}", link_->master_label(), self_.name,
                                 builds_running(builds_.size()));
            break;
        case Link::State::waiting:
            status = fmt::format("waiting for {}", link_->master_label());
            break;
        }
    }
    sd_notifyf(0, "STATUS=%s", status.c_str());
}

}  // namespace by::worker
