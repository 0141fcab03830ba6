#include "master/master.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/daemon.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "master/notifier.hpp"
#include "master/pg_listener.hpp"
#include "master/pg_store.hpp"
#include "version.hpp"

namespace by::master {

namespace {

// A schema update may outlast systemd's start timeout on a large database:
// it says so in the log and in `systemctl status`, and has the timeout
// extended to the update's own deadline.
PgStore::Migrating schema_update_notice(const std::string& uri) {
    return [uri](int64_t from, int64_t to) {
        const std::string what =
            from == to  ? fmt::format("waiting for another master's update of the schema (version {} here)", to)
            : from == 0 ? fmt::format("creating the schema (version {})", to)
                        : fmt::format("updating the schema from version {} to {}", from, to);
        log::notice("{} in {}; on a large database this may take minutes", what, uri);
        const auto limit = std::chrono::duration_cast<std::chrono::microseconds>(PgStore::migration_deadline);
        sd_notify(0, fmt::format("STATUS=PostgreSQL: {}\nEXTEND_TIMEOUT_USEC={}", what, limit.count()).c_str());
    };
}

}  // namespace

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
    const config::Master& mc = loaded.config->master;
    store_ = mc.database.empty() ? open_sqlite_store(state_directory_, error)
                                 : open_pg_store(mc.database, mc.database_password, error,
                                                 schema_update_notice(mc.database));
    if (!store_) {
        return false;
    }
    cluster_ = std::make_unique<ClusterMembership>(
        event_, store_->members(),
        MemberIdentity{.name = mc.name, .host = config::current_environment().hostname, .address = mc.listen,
                       .pid = static_cast<uint32_t>(getpid())},
        ClusterTiming{mc.cluster_heartbeat_usec, mc.cluster_timeout_usec},
        ClusterHooks{.name_lost =
                         [this] {
                             stopping();
                             sd_event_exit(event_, EXIT_FAILURE);
                         },
                     .fenced =
                         [this](const std::string& why) {
                             const std::string reason = "this master was fenced (" + why + ")";
                             build_lifecycle_->let_go_all(reason);
                             worker_lifecycle_->let_go_remote(reason);
                         },
                     .took_over = [this](const std::string& dead,
                                         std::vector<Retry>& taken) { build_lifecycle_->took_over(dead, taken); },
                     .ticked =
                         [this](const std::set<std::string>& live) {
                             sync_cluster_presence(live);
                             if (build_lifecycle_) build_lifecycle_->cluster_tick();
                         }});
    if (!cluster_->start(error)) {
        return false;
    }
    if (!metrics_.listen(loaded.config->master.metrics, error)) {
        return false;
    }
    trouble_ = std::make_unique<StoreTrouble>(
        event_, *store_, [this] { changes_->counters(); }, [this] { retry_store(); },
        [this] { build_lifecycle_->store_recovered(); });
    changes_ = std::make_unique<BusChanges>(bus_, config_, registry_, queue_, metrics_, *trouble_);
    notifier_ = std::make_unique<Notifier>(event_, *store_, metrics_, config_, *this, state_directory_);
    changes_->set_notifier(notifier_.get());
    if (!notifier_->start(error)) {
        return false;
    }
    latent_ = std::make_unique<LatentControl>(*this, *store_, metrics_, event_, bus_, LatentControl::Timeouts{});
    build_lifecycle_ = std::make_unique<BuildLifecycle>(BuildLifecycle::Parts{
        .bus = bus_,
        .config = config_,
        .state_directory = state_directory_,
        .store = *store_,
        .queue = queue_,
        .workers = registry_,
        .metrics = metrics_,
        .changes = *changes_,
        .trouble = *trouble_,
        .notifier = *notifier_,
        .latent = *latent_,
        .settle = [this](const std::set<std::string>& names) { settle(names); },
        .fenced = [this] { cluster_->check_soon(); },
    });
    worker_lifecycle_ = std::make_unique<WorkerLifecycle>(WorkerLifecycle::Parts{
        .event = event_,
        .bus = bus_,
        .config = config_,
        .store = *store_,
        .workers = registry_,
        .queue = queue_,
        .builds = *build_lifecycle_,
        .metrics = metrics_,
        .changes = *changes_,
        .trouble = *trouble_,
        .latent = *latent_,
    });
    apply_config(std::move(*loaded.config));
    if (int lr = latent_->start(); lr < 0) {
        error = std::string("cannot set up latent workers: ") + std::strerror(-lr);
        return false;
    }
    build_lifecycle_->recover(store_->load_unfinished());
    if (store_->members()) {
        // Builds the other masters queue are heard of on a connection of
        // its own.
        listener_ = std::make_unique<PgListener>(
            event_, config_.master.database, config_.master.database_password,
            std::vector<std::string>{pending_row_channel, pending_channel, taken_channel, cancel_channel},
            PgListener::Events{.heard =
                                   [this](const std::string& channel, const std::string& payload) {
                                       if (channel == taken_channel) {
                                           build_lifecycle_->foreign_taken(payload);
                                       } else if (channel == cancel_channel) {
                                           build_lifecycle_->foreign_cancel(payload);
                                       } else if (auto notice = parse_pending_notice(payload)) {
                                           build_lifecycle_->foreign_pending(*notice);
                                       }
                                   },
                               .resync = [this] { build_lifecycle_->all_foreign(); }});
        listener_->start();
    }
    r = changes_->start(event_);
    if (r >= 0) r = build_lifecycle_->start(event_);
    if (r < 0) {
        error = std::string("cannot add an event source: ") + std::strerror(-r);
        return false;
    }
    log::info("master '{}' started with {} workers and {} builders; {} builds pending",
              config_.master.name, config_.workers.size(), config_.builders.size(), queue_.pending());
    return true;
}

void Master::sync_cluster_presence(const std::set<std::string>& live) {
    const auto rows = store_->load_presence();
    if (!rows) {
        return;  // the heartbeat says what fails
    }
    for (const SharedPresence& p : *rows) {
        Worker* w = registry_.find(p.name);
        if (!w || w->attached) {
            continue;
        }
        const std::string elsewhere =
            p.attached_to != config_.master.name && live.count(p.attached_to) ? p.attached_to : std::string();
        if (elsewhere != w->master || p.last_disconnected != w->cluster_disconnected) {
            w->master = elsewhere;
            w->cluster_disconnected = p.last_disconnected;
            changes_->worker(*w);  // the notifier decides MissingSince anew
        }
    }
}

void Master::apply_config(config::Config&& c) {
    for (const auto& w : c.warnings) {
        log::warning("{}", w.str());  // on start and on each reload, like the errors
    }
    // Workers that are gone from the config get no new builds and leave once
    // their running builds end; new ones appear; changed ones take their new
    // settings for the next build.
    for (auto& [name, w] : registry_.all()) {
        auto it = c.workers.find(name);
        if (it == c.workers.end() && w->configured) {
            log::notice("worker {} was removed from the configuration", name);
        }
        registry_.configure(*w, it == c.workers.end() ? nullptr : &it->second);
    }
    for (const auto& [name, cfg] : c.workers) {
        if (!registry_.find(name)) {
            worker_lifecycle_->add(cfg);
        }
    }
    for (const auto& [name, b] : config_.builders) {
        if (!c.builders.count(name) && queue_.pending(name) > 0) {
            log::warning("builder {} was removed from the configuration; its {} pending builds wait until it returns",
                         name, queue_.pending(name));
        }
    }
    config_ = std::move(c);
    registry_.set_master_name(config_.master.name);
    build_lifecycle_->builders_changed();
    // Settling may stop and forget a worker, so walk names, not the map.
    std::vector<std::string> removed;
    for (auto& [name, w] : registry_.all()) {
        if (!w->configured) {
            removed.push_back(name);
        }
    }
    for (const auto& name : removed) {
        if (Worker* w = registry_.find(name); w && !w->attached) {
            worker_lifecycle_->forget(name);
        } else if (w) {
            worker_lifecycle_->settle(*w);
        }
    }
    latent_->set_lease(config_.master.latent_lease_usec);
    latent_->reconfigure();
    notifier_->reconfigure();
    for (auto& [name, w] : registry_.all()) {
        changes_->refresh_missing(*w);
    }
}

void Master::settle(const std::set<std::string>& names) {
    // A name at a time: settling may stop and forget a worker.
    for (const std::string& name : names) {
        if (Worker* w = registry_.find(name)) {
            latent_->builds_changed(*w);
        }
        if (Worker* still = registry_.find(name)) {
            worker_lifecycle_->settle(*still);
        }
    }
}

void Master::retry_store() {
    const uint64_t failures = trouble_->failures();
    if (!build_lifecycle_->retry_ends() || !worker_lifecycle_->save_unsaved()) {
        return;  // still failing; the next try is armed
    }
    build_lifecycle_->dispatch();  // pending builds whose start could not be recorded
    // What failed may have left nothing to write again (a submission whose
    // client was told so): if nothing this try wrote failed, a write of its
    // own says whether the trouble is over, and STATUS= with it; if not,
    // the next try is armed.
    if (trouble_->trouble() && trouble_->failures() == failures) {
        if (store_->check_writes(bus::now_realtime_usec())) {
            trouble_->ok();
        } else {
            trouble_->failed("cannot write the state database");
        }
    }
}

void Master::stopping() {
    if (cluster_) {
        cluster_->leave();
    }
    if (latent_) {
        latent_->master_stopping();
    }
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
    if (loaded.config->master.database != config_.master.database) {
        const auto shown = [](const std::string& d) { return d.empty() ? std::string("sqlite") : d; };
        std::string error = fmt::format("[master] database: cannot change on reload (from {} to {}); restart the "
                                        "master to use another database",
                                        shown(config_.master.database), shown(loaded.config->master.database));
        log::error("configuration not reloaded; the old one stays in force:\n{}", error);
        return Status::fail(bus::error::ConfigInvalid, error);
    }
    if (loaded.config->master.name != config_.master.name && store_->members()) {
        std::string error = fmt::format("[master] name: cannot change on reload in a cluster (from {} to {}); restart "
                                        "the master to take another name",
                                        config_.master.name, loaded.config->master.name);
        log::error("configuration not reloaded; the old one stays in force:\n{}", error);
        return Status::fail(bus::error::ConfigInvalid, error);
    }
    cluster_->set_timing({loaded.config->master.cluster_heartbeat_usec, loaded.config->master.cluster_timeout_usec});
    for (const auto& [name, b] : config_.builders) {
        changes_->counters(name);  // those that go are forgotten
    }
    std::string metrics_error;
    if (!metrics_.listen(loaded.config->master.metrics, metrics_error)) {
        log::error("{}; metrics stay on {}", metrics_error,
                   metrics_.address().empty() ? std::string("nothing") : metrics_.address());
    }
    apply_config(std::move(*loaded.config));
    for (auto& [name, w] : registry_.all()) {
        changes_->worker(*w);
    }
    for (const auto& [name, b] : config_.builders) {
        std::string path = bus::path_encode(bus::builder_prefix, name);
        sd_bus_emit_properties_changed(bus_, path.c_str(), bus::builder_iface, "Workers", "Steps", nullptr);
        changes_->counters(name);
    }
    log::info("configuration reloaded: {} workers, {} builders", config_.workers.size(), config_.builders.size());
    if (reloaded_) {
        reloaded_(config_);
    }
    changes_->counters();
    build_lifecycle_->dispatch();
    return Status::ok();
}

const config::Builder* Master::find_builder(const std::string& name) const {
    auto it = config_.builders.find(name);
    return it == config_.builders.end() ? nullptr : &it->second;
}

std::string Master::describe() const {
    nlohmann::json j;
    j["version"] = BUILDYARD_VERSION;
    j["name"] = config_.master.name;
    j["connected_workers"] = registry_.connected();
    j["running_builds"] = queue_.running();
    j["pending_builds"] = queue_.pending();
    j["config_files"] = config_.files;
    registry_.describe(j["workers"]);
    auto& bs = j["builders"] = nlohmann::json::object();
    for (const auto& [name, b] : config_.builders) {
        bs[name] = {{"workers", b.workers}, {"steps", b.steps}, {"pending_builds", queue_.pending(name)}};
    }
    auto& active = j["active_builds"] = nlohmann::json::array();
    for (const auto& [id, ab] : queue_.all_active()) {
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

void Master::emit_worker(Worker& w) {
    if (changes_) {
        changes_->worker(w);
    } else {
        registry_.changed(w);
    }
}

void Master::set_tls_fingerprint(const std::string& fingerprint) {
    if (fingerprint == tls_fingerprint_) {
        return;
    }
    tls_fingerprint_ = fingerprint;
    if (changes_) {
        changes_->tls_fingerprint();
    }
}

}  // namespace by::master
