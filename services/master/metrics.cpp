#include "master/metrics.hpp"

#include <exception>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "master/process_metrics.hpp"
#include "version.hpp"

namespace by::master {

namespace p = prometheus;

std::string_view to_string(DetachCause c) {
    switch (c) {
    case DetachCause::connection_closed: return "connection_closed";
    case DetachCause::worker_request: return "worker_request";
    case DetachCause::keepalive: return "keepalive";
    case DetachCause::replaced: return "replaced";
    case DetachCause::shutdown: return "shutdown";
    case DetachCause::removed: return "removed";
    case DetachCause::latent: return "latent";
    case DetachCause::error: return "error";
    case DetachCause::fenced: return "fenced";
    }
    return "error";
}

std::string_view to_string(RemoteRefusal r) {
    switch (r) {
    case RemoteRefusal::too_many_connections: return "too_many_connections";
    case RemoteRefusal::too_many_unauthenticated: return "too_many_unauthenticated";
    case RemoteRefusal::unknown_worker: return "unknown_worker";
    case RemoteRefusal::wrong_password: return "wrong_password";
    case RemoteRefusal::wrong_token: return "wrong_token";
    case RemoteRefusal::stale_token: return "stale_token";
    case RemoteRefusal::already_attached: return "already_attached";
    case RemoteRefusal::attach_refused: return "attach_refused";
    case RemoteRefusal::not_authenticated: return "not_authenticated";
    case RemoteRefusal::auth_timeout: return "auth_timeout";
    }
    return "attach_refused";
}

namespace {

// From 10 ms to 6 h, about three per decade: builds and starts take anything
// from a blink to an afternoon.
const p::Histogram::BucketBoundaries& duration_buckets() {
    static const p::Histogram::BucketBoundaries b{0.01, 0.03, 0.1,  0.3,  1,    3,    10,    30,   60,
                                                  120,  300,  600,  1200, 1800, 3600, 7200, 14400, 21600};
    return b;
}

double seconds_between(uint64_t from_usec, uint64_t to_usec) {
    return to_usec > from_usec ? static_cast<double>(to_usec - from_usec) / 1e6 : 0.0;
}

constexpr std::string_view worker_states[] = {"offline", "idle", "building", "paused", "substantiating",
                                               "insubstantiating"};
constexpr std::string_view worker_types[] = {"local", "standard", "latent"};

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<p::Registry>()), process_(make_process_collector()) {
    auto& r = *registry_;
    p::BuildGauge()
        .Name("buildyard_master_info")
        .Help("Always 1; the label says which version of buildyard-masterd runs.")
        .Register(r)
        .Add({{"version", BUILDYARD_VERSION}})
        .Set(1);
    workers_by_state_ = &p::BuildGauge()
                             .Name("buildyard_workers")
                             .Help("Configured workers by state, as Worker1.State shows it.")
                             .Register(r);
    for (auto s : worker_states) workers_by_state_->Add({{"state", std::string(s)}});
    workers_by_type_ = &p::BuildGauge()
                            .Name("buildyard_workers_by_type")
                            .Help("Configured workers by type (local, standard, latent).")
                            .Register(r);
    for (auto t : worker_types) workers_by_type_->Add({{"type", std::string(t)}});
    quarantined_ = &p::BuildGauge()
                        .Name("buildyard_latent_workers_quarantined")
                        .Help("Latent workers whose machine is not started again now, after failed starts.")
                        .Register(r)
                        .Add({});
    attaches_ = &p::BuildCounter()
                     .Name("buildyard_worker_attaches_total")
                     .Help("Workers that attached, over the system bus or TCP.")
                     .Register(r)
                     .Add({});
    detaches_ = &p::BuildCounter()
                     .Name("buildyard_worker_detaches_total")
                     .Help("Workers that detached, by reason.")
                     .Register(r);
    pending_ = &p::BuildGauge()
                    .Name("buildyard_builds_pending")
                    .Help("Builds waiting in the queue for a worker, by builder.")
                    .Register(r);
    running_ = &p::BuildGauge()
                    .Name("buildyard_builds_running")
                    .Help("Builds running on a worker (or waiting for a latent worker's machine), by builder.")
                    .Register(r);
    finished_ = &p::BuildCounter()
                     .Name("buildyard_builds_finished_total")
                     .Help("Builds that ended, by builder and result (retry: rerun as a new build).")
                     .Register(r);
    duration_ = &p::BuildHistogram()
                     .Name("buildyard_build_duration_seconds")
                     .Help("How long builds ran, from start to end, by builder.")
                     .Register(r);
    queue_wait_ = &p::BuildHistogram()
                       .Name("buildyard_build_queue_wait_seconds")
                       .Help("How long builds waited in the queue before they started, by builder.")
                       .Register(r);
    latent_starts_total_ = &p::BuildCounter()
                                .Name("buildyard_latent_starts_total")
                                .Help("Starts of latent workers' machines, by worker and outcome (attached, failed, "
                                      "abandoned).")
                                .Register(r);
    latent_start_duration_ = &p::BuildHistogram()
                                  .Name("buildyard_latent_start_duration_seconds")
                                  .Help("From asking for a latent worker's machine until its worker attached, by "
                                        "worker.")
                                  .Register(r);
    mail_queued_ = &p::BuildCounter()
                        .Name("buildyard_mails_queued_total")
                        .Help("Mails queued for delivery (missing workers, build results).")
                        .Register(r)
                        .Add({});
    mail_sent_ = &p::BuildCounter()
                      .Name("buildyard_mails_sent_total")
                      .Help("Mails the mail server accepted for every recipient.")
                      .Register(r)
                      .Add({});
    mail_failed_ = &p::BuildCounter()
                        .Name("buildyard_mails_failed_total")
                        .Help("Failed mail deliveries, by outcome (retry: tried again later; given_up: after a day).")
                        .Register(r);
    mail_queue_ = &p::BuildGauge()
                       .Name("buildyard_mails_queued")
                       .Help("Mails in the queue now, waiting for delivery or for their next attempt.")
                       .Register(r)
                       .Add({});
    remote_refused_ = &p::BuildCounter()
                           .Name("buildyard_remote_refused_total")
                           .Help("Remote worker connections or handshakes refused, by reason.")
                           .Register(r);
    bus_calls_ = &p::BuildCounter()
                      .Name("buildyard_bus_calls_total")
                      .Help("Method calls on the master's D-Bus interfaces, by interface, method and the error "
                            "they were answered with (none: success).")
                      .Register(r);
}

Metrics::~Metrics() = default;

bool Metrics::listen(const std::string& address, std::string& error) {
    if (address == address_ && (exposer_ || address.empty())) {
        return true;
    }
    if (address.empty()) {
        exposer_.reset();
        address_.clear();
        return true;
    }
    std::unique_ptr<p::Exposer> next;
    try {
        next = std::make_unique<p::Exposer>(address, 2);
    } catch (const std::exception& e) {
        error = "cannot serve metrics on " + address + ": " + e.what();
        return false;
    }
    next->RegisterCollectable(registry_);
    next->RegisterCollectable(process_);
    exposer_ = std::move(next);
    address_ = address;
    return true;
}

int Metrics::port() const {
    if (!exposer_) {
        return 0;
    }
    auto ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
}

std::string Metrics::text() const {
    auto families = registry_->Collect();
    auto more = process_->Collect();
    families.insert(families.end(), more.begin(), more.end());
    return p::TextSerializer().Serialize(families);
}

void Metrics::count_worker(const WorkerSeen& w, int delta) {
    workers_by_state_->Add({{"state", w.state}}).Increment(delta);
    workers_by_type_->Add({{"type", w.type}}).Increment(delta);
    if (w.quarantined) {
        quarantined_->Increment(delta);
    }
}

void Metrics::worker_shown(const std::string& name, const WorkerShown& shown, uint64_t now) {
    WorkerSeen seen{shown.type, shown.state, shown.quarantined_until > now};
    auto [it, added] = workers_.try_emplace(name, seen);
    if (!added) {
        if (it->second.type == seen.type && it->second.state == seen.state &&
            it->second.quarantined == seen.quarantined) {
            return;
        }
        count_worker(it->second, -1);
        it->second = seen;
    }
    count_worker(seen, +1);
}

void Metrics::worker_forgotten(const std::string& name) {
    if (auto it = workers_.find(name); it != workers_.end()) {
        count_worker(it->second, -1);
        workers_.erase(it);
    }
    latent_starts_.erase(name);
}

void Metrics::worker_attached() { attaches_->Increment(); }

void Metrics::worker_detached(DetachCause cause) {
    detaches_->Add({{"reason", std::string(to_string(cause))}}).Increment();
}

void Metrics::builder_counts(const std::string& builder, unsigned pending, unsigned running) {
    pending_->Add({{"builder", builder}}).Set(pending);
    running_->Add({{"builder", builder}}).Set(running);
}

void Metrics::builder_forgotten(const std::string& builder) {
    // The counters and histograms of a removed builder stay: they only grow.
    pending_->Remove(&pending_->Add({{"builder", builder}}));
    running_->Remove(&running_->Add({{"builder", builder}}));
}

void Metrics::build_started(const Build& b) {
    queue_wait_->Add({{"builder", b.builder}}, duration_buckets()).Observe(seconds_between(b.submitted_at, b.started_at));
}

void Metrics::build_finished(const Build& b) {
    finished_->Add({{"builder", b.builder}, {"result", std::string(to_string(b.result))}}).Increment();
    if (b.started_at != 0) {
        duration_->Add({{"builder", b.builder}}, duration_buckets()).Observe(seconds_between(b.started_at, b.finished_at));
    }
}

void Metrics::latent_start_begun(const std::string& worker, uint64_t now) { latent_starts_[worker] = now; }

void Metrics::latent_start_ended(const std::string& worker, std::string_view outcome, uint64_t now) {
    auto it = latent_starts_.find(worker);
    if (it == latent_starts_.end()) {
        return;
    }
    latent_starts_total_->Add({{"worker", worker}, {"outcome", std::string(outcome)}}).Increment();
    if (outcome == "attached") {
        latent_start_duration_->Add({{"worker", worker}}, duration_buckets()).Observe(seconds_between(it->second, now));
    }
    latent_starts_.erase(it);
}

void Metrics::mail_queued() { mail_queued_->Increment(); }

void Metrics::mail_sent() { mail_sent_->Increment(); }

void Metrics::mail_failed(bool given_up) {
    mail_failed_->Add({{"outcome", given_up ? "given_up" : "retry"}}).Increment();
}

void Metrics::mail_queue_length(uint64_t n) { mail_queue_->Set(static_cast<double>(n)); }

void Metrics::remote_refused(RemoteRefusal why) {
    remote_refused_->Add({{"reason", std::string(to_string(why))}}).Increment();
}

void Metrics::bus_call(std::string_view interface, std::string_view method, std::string_view error) {
    // Every Output and StepStarted of every build comes through here: look
    // the counter up once, not its labels on each call.
    auto it = bus_call_counters_.find(std::tuple{interface, method, error});
    if (it == bus_call_counters_.end()) {
        auto& c = bus_calls_->Add({{"interface", std::string(interface)},
                                   {"method", std::string(method)},
                                   {"error", error.empty() ? std::string("none") : std::string(error)}});
        it = bus_call_counters_.emplace(std::tuple{std::string(interface), std::string(method), std::string(error)}, &c)
                 .first;
    }
    it->second->Increment();
}

}  // namespace by::master
