// The master's Prometheus metrics (prometheus-cpp). The master calls these
// methods from its loop thread only, as things happen; prometheus-cpp's
// counters, gauges and histograms are safe to read from the HTTP server's
// own threads, which never touch the master's data. Every label takes its
// values from a bounded set: names from the configuration, states, results,
// and the enums below; never a build ID or a peer address.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "master/build.hpp"
#include "master/shown.hpp"

namespace prometheus {
class Collectable;
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace by::master {

// Why a worker detached, as the buildyard_worker_detaches_total label says.
enum class DetachCause {
    connection_closed,  // its bus connection or TCP connection went away
    worker_request,     // it called WorkerLink1.Detach
    keepalive,          // a remote worker missed a keepalive
    replaced,           // a new connection for it won over a silent one
    shutdown,           // Worker1.Shutdown
    removed,            // a reload removed it from the configuration
    latent,             // its latent machine was given up
    error,              // the master could not talk to it
    fenced,             // this master was fenced and let its remote workers go
};
std::string_view to_string(DetachCause c);

// Why the remote listener refused a connection or a handshake.
enum class RemoteRefusal {
    too_many_connections,
    too_many_unauthenticated,  // from one address
    unknown_worker,
    wrong_password,
    wrong_token,
    stale_token,
    already_attached,   // a second connection while the first one answers
    attach_refused,     // authenticated, but the master would not attach it
    not_authenticated,  // a call other than the handshake before it
    auth_timeout,       // closed: not authenticated in time
};
std::string_view to_string(RemoteRefusal r);

class Metrics {
public:
    Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;
    ~Metrics();

    // Serves /metrics on `address` ("IP:PORT", an IPv6 address in brackets;
    // empty: no server). Changing it starts a new server before the old one
    // stops; if it cannot be bound, the old one stays and `error` says why.
    bool listen(const std::string& address, std::string& error);
    const std::string& address() const { return address_; }
    // The port the server listens on (0: none).
    int port() const;
    // The text a scrape returns, for tests and benchmarks.
    std::string text() const;

    // Workers: what Worker1 shows of each (type, state, quarantine), at
    // start and after every change; and when one leaves the configuration.
    void worker_shown(const std::string& name, const WorkerShown& shown, uint64_t now);
    void worker_forgotten(const std::string& name);
    void worker_attached();
    void worker_detached(DetachCause cause);

    // Builds: pending and running now, per builder; a build that started
    // (its queue wait) and one that ended (its result and duration).
    void builder_counts(const std::string& builder, unsigned pending, unsigned running);
    void builder_forgotten(const std::string& builder);
    void build_started(const Build& b);
    void build_finished(const Build& b);

    // Latent workers: a start was asked for, and how it ended ("attached",
    // "failed", or "abandoned" when the machine was no longer wanted).
    void latent_start_begun(const std::string& worker, uint64_t now);
    void latent_start_ended(const std::string& worker, std::string_view outcome, uint64_t now);
    bool latent_start_pending(const std::string& worker) const { return latent_starts_.count(worker) != 0; }

    // Mail.
    void mail_queued();
    void mail_sent();
    void mail_failed(bool given_up);
    void mail_queue_length(uint64_t n);

    void remote_refused(RemoteRefusal why);
    // A method call on one of the master's interfaces, and the error it
    // was answered with (empty: none).
    void bus_call(std::string_view interface, std::string_view method, std::string_view error);

private:
    struct WorkerSeen {
        std::string type, state;
        bool quarantined = false;
    };
    void count_worker(const WorkerSeen& w, int delta);

    std::shared_ptr<prometheus::Registry> registry_;
    std::shared_ptr<prometheus::Collectable> process_;  // process_* from /proc, read on each scrape
    std::unique_ptr<prometheus::Exposer> exposer_;
    std::string address_;

    prometheus::Family<prometheus::Gauge>* workers_by_state_;
    prometheus::Family<prometheus::Gauge>* workers_by_type_;
    prometheus::Gauge* quarantined_;
    prometheus::Counter* attaches_;
    prometheus::Family<prometheus::Counter>* detaches_;
    prometheus::Family<prometheus::Gauge>* pending_;
    prometheus::Family<prometheus::Gauge>* running_;
    prometheus::Family<prometheus::Counter>* finished_;
    prometheus::Family<prometheus::Histogram>* duration_;
    prometheus::Family<prometheus::Histogram>* queue_wait_;
    prometheus::Family<prometheus::Counter>* latent_starts_total_;
    prometheus::Family<prometheus::Histogram>* latent_start_duration_;
    prometheus::Counter* mail_queued_;
    prometheus::Counter* mail_sent_;
    prometheus::Family<prometheus::Counter>* mail_failed_;
    prometheus::Gauge* mail_queue_;
    prometheus::Family<prometheus::Counter>* remote_refused_;
    prometheus::Family<prometheus::Counter>* bus_calls_;

    std::map<std::string, WorkerSeen> workers_;
    std::map<std::string, uint64_t> latent_starts_;  // worker -> when its start was asked for
    // By interface, method and error, looked up by string_views. Compared
    // as tuples of string_view: clang (14) with libstdc++ 12 cannot compare
    // a tuple of strings with one of string_views, as std::less<> would.
    struct CallKeyLess {
        using is_transparent = void;
        template <class A, class B>
        bool operator()(const A& a, const B& b) const {
            return views(a) < views(b);
        }
        template <class T>
        static std::tuple<std::string_view, std::string_view, std::string_view> views(const T& t) {
            return {std::get<0>(t), std::get<1>(t), std::get<2>(t)};
        }
    };
    std::map<std::tuple<std::string, std::string, std::string>, prometheus::Counter*, CallKeyLess> bus_call_counters_;
};

}  // namespace by::master
