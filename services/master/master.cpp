#include "master/master.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "common/daemon.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "master/notifier.hpp"
#include "version.hpp"

namespace by::master {

std::string_view to_string(WorkerStateName s) {
    switch (s) {
    case WorkerStateName::offline: return "offline";
    case WorkerStateName::idle: return "idle";
    case WorkerStateName::building: return "building";
    case WorkerStateName::paused: return "paused";
    case WorkerStateName::substantiating: return "substantiating";
    case WorkerStateName::insubstantiating: return "insubstantiating";
    }
    return "offline";
}

WorkerStateName Worker::state() const {
    if (latent && cfg.type == config::WorkerType::latent && !(attached && paused)) {
        switch (latent->machine.state()) {
        case LatentState::offline: return WorkerStateName::offline;
        case LatentState::substantiating: return WorkerStateName::substantiating;
        case LatentState::idle: return WorkerStateName::idle;
        case LatentState::building: return WorkerStateName::building;
        case LatentState::insubstantiating: return WorkerStateName::insubstantiating;
        }
    }
    if (!attached) {
        return WorkerStateName::offline;
    }
    if (paused) {
        return WorkerStateName::paused;
    }
    return running.empty() ? WorkerStateName::idle : WorkerStateName::building;
}

Master::Master(sd_event* event, sd_bus* bus, std::string config_path, std::string state_directory)
    : event_(event), bus_(bus), config_path_(std::move(config_path)), state_directory_(std::move(state_directory)) {}

Master::~Master() = default;

ActiveBuild::ActiveBuild(Build b) : build(std::move(b)), shown(build) {}

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
            auto ab = std::make_unique<ActiveBuild>(std::move(b));
            ab->path = bus::path_encode(bus::build_prefix, std::to_string(ab->build.id));
            ab->ending = Ending{Result::retry, -1, now, "the master stopped while it ran"};
            count_running(ab->build.builder, +1);
            active_[ab->build.id] = std::move(ab);
        }
        store_failed(fmt::format("cannot requeue build {}", retries.front().old.id));
    }
    for (Build& b : builds) {
        auto ab = std::make_unique<ActiveBuild>(std::move(b));
        ab->path = bus::path_encode(bus::build_prefix, std::to_string(ab->build.id));
        dispatcher_.enqueue(ab->build.builder, ab->build.id);
        active_[ab->build.id] = std::move(ab);
    }
    // The first flush counts every builder's queue, for the metrics.
    for (const auto& [name, b] : config_.builders) {
        dirty_builders_.insert(name);
    }
    for (const auto& [id, ab] : active_) {
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
              config_.master.name, config_.workers.size(), config_.builders.size(), dispatcher_.pending());
    return true;
}

Worker& Master::add_worker(const config::Worker& cfg) {
    auto w = std::make_unique<Worker>();
    w->cfg = cfg;
    w->path = bus::path_encode(bus::worker_prefix, cfg.name);
    w->master = this;
    if (auto rec = store_->load_worker(cfg.name)) {
        w->paused = rec->paused;
        w->pause_reason = rec->pause_reason;
        w->last_connected = rec->last_connected;
        w->last_disconnected = rec->last_disconnected;
        w->info = rec->info;
        if (w->last_connected > w->last_disconnected) {
            // It was attached when the master stopped, and that link is
            // gone: record its end now, or every restart would restart the
            // worker's missing clock.
            w->last_disconnected = bus::now_realtime_usec();
            save_worker(*w);
        }
    }
    w->shown = shown_now(*w);
    metrics_.worker_shown(cfg.name, w->shown, bus::now_realtime_usec());
    auto& ref = *w;
    workers_[cfg.name] = std::move(w);
    return ref;
}

void Master::apply_config(config::Config&& c) {
    for (const auto& w : c.warnings) {
        log::warning("{}", w.str());  // on start and on each reload, like the errors
    }
    // Workers that are gone from the config get no new builds and leave once
    // their running builds end; new ones appear; changed ones take their new
    // settings for the next build.
    for (auto& [name, w] : workers_) {
        auto it = c.workers.find(name);
        if (it == c.workers.end()) {
            if (w->configured) {
                log::notice("worker {} was removed from the configuration", name);
            }
            w->configured = false;
        } else {
            w->cfg = it->second;
            w->configured = true;
        }
    }
    for (const auto& [name, cfg] : c.workers) {
        if (!workers_.count(name)) {
            add_worker(cfg);
        }
    }
    for (const auto& [name, b] : config_.builders) {
        if (!c.builders.count(name) && dispatcher_.pending(name) > 0) {
            log::warning("builder {} was removed from the configuration; its {} pending builds wait until it returns",
                         name, dispatcher_.pending(name));
        }
    }
    config_ = std::move(c);
    // Settling may stop and forget a worker, so walk names, not the map.
    std::vector<std::string> removed;
    for (auto& [name, w] : workers_) {
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
    auto it = workers_.find(name);
    if (it == workers_.end() || !it->second->latent) {
        return {};
    }
    const LatentSide& side = *it->second->latent;
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
    for (auto& [name, w] : workers_) {
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
    auto it = workers_.find(name);
    if (it == workers_.end()) {
        return;
    }
    if (!it->second->bus_name.empty()) {
        sender_to_worker_.erase(it->second->bus_name);
    }
    if (latent_) {
        latent_->forget(*it->second);
    }
    metrics_.worker_forgotten(name);
    workers_.erase(it);
}

Worker* Master::find_worker(const std::string& name) {
    auto it = workers_.find(name);
    return it == workers_.end() ? nullptr : it->second.get();
}

const config::Builder* Master::find_builder(const std::string& name) const {
    auto it = config_.builders.find(name);
    return it == config_.builders.end() ? nullptr : &it->second;
}

const Build* Master::find_build(uint64_t id) {
    if (auto it = active_.find(id); it != active_.end()) {
        return &it->second->build;
    }
    if (auto it = finished_cache_.find(id); it != finished_cache_.end()) {
        return &it->second;
    }
    auto b = store_->load_build(id);
    if (!b) {
        return nullptr;
    }
    // A small cache of finished builds, so that a client reading all the
    // properties of one build does not query the database each time.
    constexpr size_t cache_size = 256;
    if (finished_cache_.size() >= cache_size) {
        finished_cache_.erase(finished_cache_.begin());
    }
    return &(finished_cache_[id] = std::move(*b));
}

unsigned Master::connected_workers() const {
    unsigned n = 0;
    for (const auto& [name, w] : workers_) {
        n += w->attached ? 1 : 0;
    }
    return n;
}

unsigned Master::running_builds(const std::string& builder) const {
    auto it = running_by_builder_.find(builder);
    return it == running_by_builder_.end() ? 0 : it->second;
}

void Master::count_running(const std::string& builder, int delta) {
    running_ += delta;
    auto& n = running_by_builder_[builder];
    n += delta;
    if (n == 0) {
        running_by_builder_.erase(builder);
    }
}

std::vector<uint64_t> Master::recent_build_ids(size_t n) const {
    std::vector<uint64_t> ids;
    for (const auto& [id, ab] : active_) {
        ids.push_back(id);
    }
    for (auto it = finished_cache_.rbegin(); it != finished_cache_.rend() && ids.size() < n + active_.size(); ++it) {
        ids.push_back(it->first);
    }
    return ids;
}

std::vector<Build> Master::list_builds(uint64_t before, uint64_t limit) {
    // One reply never holds the whole history: at most list_builds_max.
    auto builds = store_->list_builds(before, limit == 0 ? list_builds_max : std::min(limit, list_builds_max));
    // The database is written through, but the log position of a running
    // build is only in memory.
    for (auto& b : builds) {
        if (auto it = active_.find(b.id); it != active_.end()) {
            b = it->second->build;
        }
    }
    return builds;
}

std::string Master::describe() const {
    nlohmann::json j;
    j["version"] = BUILDYARD_VERSION;
    j["name"] = config_.master.name;
    j["connected_workers"] = connected_workers();
    j["running_builds"] = running_;
    j["pending_builds"] = dispatcher_.pending();
    j["config_files"] = config_.files;
    auto& ws = j["workers"] = nlohmann::json::object();
    for (const auto& [name, w] : workers_) {
        const char* type = w->cfg.type == config::WorkerType::local    ? "local"
                           : w->cfg.type == config::WorkerType::latent ? "latent"
                                                                       : "standard";
        ws[name] = {{"state", to_string(w->state())},
                    {"type", type},
                    {"connected", w->attached},
                    {"configured", w->configured},
                    {"paused", w->paused},
                    {"pause_reason", w->pause_reason},
                    {"max_builds", w->cfg.max_builds},
                    {"running_builds", w->running},
                    {"properties", w->cfg.properties},
                    {"default_properties", w->cfg.default_properties},
                    {"info", w->info},
                    {"last_connected", w->last_connected},
                    {"last_disconnected", w->last_disconnected},
                    {"missing_since", missing_since(name)},
                    {"missing_notified", missing_notified(name)}};
        if (w->latent) {
            const LatentSide& l = *w->latent;
            ws[name]["latent"] = {{"backend", w->cfg.backend},
                                  {"build_wait_timeout", w->cfg.build_wait_timeout},
                                  {"start", l.start},
                                  {"instance", l.instance},
                                  {"start_failures", l.machine.failures()},
                                  {"quarantined_until", l.machine.quarantine_until()},
                                  {"last_start_error", l.machine.last_error()}};
        }
    }
    auto& bs = j["builders"] = nlohmann::json::object();
    for (const auto& [name, b] : config_.builders) {
        bs[name] = {{"workers", b.workers}, {"steps", b.steps}, {"pending_builds", dispatcher_.pending(name)}};
    }
    auto& active = j["active_builds"] = nlohmann::json::array();
    for (const auto& [id, ab] : active_) {
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

void Master::counters_changed(const std::string& builder) {
    if (!builder.empty()) {
        dirty_builders_.insert(builder);
    }
    if (changes_source_) {
        sd_event_source_set_enabled(changes_source_.get(), SD_EVENT_ONESHOT);
    }
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

int Master::on_changes_deferred(sd_event_source*, void* userdata) {
    static_cast<Master*>(userdata)->flush_changes();
    return 0;
}

namespace {

// sd_bus_emit_properties_changed_strv() wants a NULL-terminated char**.
void emit_changed(sd_bus* bus, const std::string& path, const char* iface, std::vector<const char*>& names) {
    if (names.empty()) {
        return;
    }
    names.push_back(nullptr);
    sd_bus_emit_properties_changed_strv(bus, path.c_str(), iface, const_cast<char**>(names.data()));
}

}  // namespace

void Master::flush_changes() {
    const uint64_t realtime = bus::now_realtime_usec();
    for (const auto& name : dirty_workers_) {
        if (Worker* w = find_worker(name)) {
            WorkerShown now = shown_now(*w);
            auto names = changed_properties(w->shown, now);
            emit_changed(bus_, w->path, bus::worker_iface, names);
            w->shown = std::move(now);
            metrics_.worker_shown(name, w->shown, realtime);
        }
    }
    dirty_workers_.clear();

    Counters now{connected_workers(), running_, static_cast<uint32_t>(dispatcher_.pending())};
    std::vector<const char*> names;
    if (now.connected != shown_counters_.connected) names.push_back("ConnectedWorkers");
    if (now.running != shown_counters_.running) names.push_back("RunningBuilds");
    if (now.pending != shown_counters_.pending) names.push_back("PendingBuilds");
    emit_changed(bus_, bus::master_path, bus::master_iface, names);
    shown_counters_ = now;

    for (const auto& name : dirty_builders_) {
        std::pair<uint32_t, uint32_t> counts{pending_builds(name), running_builds(name)};
        // A removed builder's builds still count while they wait or run.
        if (find_builder(name) || counts.first || counts.second) {
            metrics_.builder_counts(name, counts.first, counts.second);
        } else {
            metrics_.builder_forgotten(name);
        }
        if (!find_builder(name)) {
            shown_builder_counters_.erase(name);
            continue;
        }
        auto [it, added] = shown_builder_counters_.try_emplace(name, counts);
        if (added || it->second != counts) {
            it->second = counts;
            std::string path = bus::path_encode(bus::builder_prefix, name);
            sd_bus_emit_properties_changed(bus_, path.c_str(), bus::builder_iface, "PendingBuilds", "RunningBuilds",
                                           nullptr);
        }
    }
    dirty_builders_.clear();

    std::string status = fmt::format("{}/{} workers attached, {} builds running, {} pending", now.connected,
                                     workers_.size(), now.running, now.pending);
    if (store_trouble_) {
        status += fmt::format("; cannot write the state database ({}): changes wait, retried every second",
                              *store_trouble_);
    }
    if (status != shown_status_) {
        sd_notify(0, ("STATUS=" + status).c_str());
        shown_status_ = std::move(status);
    }
}

WorkerShown Master::shown_now(const Worker& w) const {
    WorkerShown s;
    s.type = std::string(config::to_string(w.cfg.type));
    s.state = std::string(to_string(w.state()));
    s.connected = w.attached;
    s.paused = w.paused;
    s.pause_reason = w.pause_reason;
    s.max_builds = w.cfg.max_builds;
    s.running_builds = static_cast<uint32_t>(w.running.size());
    s.properties = w.cfg.properties;
    s.default_properties = w.cfg.default_properties;
    s.info = w.info;
    s.keepalive_interval = w.cfg.keepalive_interval;
    s.missing_timeout = w.cfg.missing_timeout;
    s.notify_on_missing = w.cfg.notify_on_missing;
    s.last_connected = w.last_connected;
    s.last_disconnected = w.last_disconnected;
    s.configured = w.configured;
    s.missing_since = missing_since(w.cfg.name);
    s.missing_notified = missing_notified(w.cfg.name);
    s.backend = w.cfg.backend;
    if (w.latent) {
        s.build_wait_timeout = w.cfg.build_wait_timeout;
        s.instance_start = w.latent->start;
        s.instance = w.latent->instance;
        s.start_failures = w.latent->machine.failures();
        s.quarantined_until = w.latent->machine.quarantine_until();
        s.last_start_error = w.latent->machine.last_error();
    }
    return s;
}

void Master::emit_worker(const Worker& w) {
    if (notifier_) {
        notifier_->worker_changed(w.cfg.name);  // before the flush reads MissingSince
    }
    dirty_workers_.insert(w.cfg.name);
    counters_changed();
}

uint64_t Master::missing_since(const std::string& worker) const {
    return notifier_ ? notifier_->missing_since(worker) : 0;
}

bool Master::missing_notified(const std::string& worker) const {
    return notifier_ && notifier_->missing_notified(worker);
}

void Master::emit_build(ActiveBuild& ab) {
    auto names = changed_properties(ab.shown, ab.build);
    emit_changed(bus_, ab.path, bus::build_iface, names);
    ab.shown = ab.build;
}

void Master::set_tls_fingerprint(const std::string& fingerprint) {
    if (fingerprint == tls_fingerprint_) {
        return;
    }
    tls_fingerprint_ = fingerprint;
    sd_bus_emit_properties_changed(bus_, bus::master_path, bus::master_iface, "TlsFingerprint", nullptr);
}

}  // namespace by::master
