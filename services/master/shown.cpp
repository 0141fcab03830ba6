#include "master/shown.hpp"

#include <type_traits>

#include <nlohmann/json.hpp>

#include "common/bus.hpp"

namespace by::master {

namespace {

// Collects the names of the properties that differ.
struct Names {
    std::vector<const char*> list;
    void operator()(bool differs, const char* name) {
        if (differs) {
            list.push_back(name);
        }
    }
};

int append_value(sd_bus_message* m, const std::string& v) { return sd_bus_message_append(m, "s", v.c_str()); }
int append_value(sd_bus_message* m, bool v) { return sd_bus_message_append(m, "b", v ? 1 : 0); }
int append_value(sd_bus_message* m, uint32_t v) { return sd_bus_message_append(m, "u", v); }
int append_value(sd_bus_message* m, uint64_t v) { return sd_bus_message_append(m, "t", v); }
int append_value(sd_bus_message* m, int64_t v) { return sd_bus_message_append(m, "x", v); }
int append_value(sd_bus_message* m, const std::map<std::string, std::string>& v) {
    return bus::append_string_map(m, v);
}
int append_value(sd_bus_message* m, const std::vector<std::string>& v) { return bus::append_strv(m, v); }

template <class T>
constexpr const char* signature_of() {
    if constexpr (std::is_same_v<T, std::string>) return "s";
    else if constexpr (std::is_same_v<T, bool>) return "b";
    else if constexpr (std::is_same_v<T, uint32_t>) return "u";
    else if constexpr (std::is_same_v<T, uint64_t>) return "t";
    else if constexpr (std::is_same_v<T, int64_t>) return "x";
    else if constexpr (std::is_same_v<T, std::vector<std::string>>) return "as";
    else {
        static_assert(std::is_same_v<T, std::map<std::string, std::string>>);
        return "a{ss}";
    }
}

struct Shown {
    bool constant = false;
    const char* describe_key = nullptr;
    bool latent_only = false;
};

// The row of property `name`, the WorkerShown member M.
template <auto M>
constexpr WorkerProperty row(const char* name, Shown how) {
    using T = std::remove_cvref_t<decltype(std::declval<const WorkerShown&>().*M)>;
    return WorkerProperty{
        name,
        signature_of<T>(),
        how.constant,
        how.describe_key,
        how.latent_only,
        [](sd_bus_message* reply, const WorkerShown& s) { return append_value(reply, s.*M); },
        [](const WorkerShown& a, const WorkerShown& b) { return a.*M != b.*M; },
        [](nlohmann::json& out, const WorkerShown& s) { out = s.*M; },
    };
}

}  // namespace

// Describe has no "name" (workers are keyed by it) and lists the ids of the
// running builds where Worker1 counts them (worker_registry.cpp).
constinit const std::array<WorkerProperty, 27> worker_properties{
    row<&WorkerShown::name>("Name", {.constant = true}),
    row<&WorkerShown::type>("Type", {.describe_key = "type"}),
    row<&WorkerShown::state>("State", {.describe_key = "state"}),
    row<&WorkerShown::connected>("Connected", {.describe_key = "connected"}),
    row<&WorkerShown::master>("Master", {.describe_key = "master"}),
    row<&WorkerShown::paused>("Paused", {.describe_key = "paused"}),
    row<&WorkerShown::pause_reason>("PauseReason", {.describe_key = "pause_reason"}),
    row<&WorkerShown::max_builds>("MaxBuilds", {.describe_key = "max_builds"}),
    row<&WorkerShown::running_builds>("RunningBuilds", {}),
    row<&WorkerShown::properties>("Properties", {.describe_key = "properties"}),
    row<&WorkerShown::default_properties>("DefaultProperties", {.describe_key = "default_properties"}),
    row<&WorkerShown::info>("Info", {.describe_key = "info"}),
    row<&WorkerShown::keepalive_interval>("KeepaliveInterval", {.describe_key = "keepalive_interval"}),
    row<&WorkerShown::missing_timeout>("MissingTimeout", {.describe_key = "missing_timeout"}),
    row<&WorkerShown::notify_on_missing>("NotifyOnMissing", {.describe_key = "notify_on_missing"}),
    row<&WorkerShown::last_connected>("LastConnected", {.describe_key = "last_connected"}),
    row<&WorkerShown::last_disconnected>("LastDisconnected", {.describe_key = "last_disconnected"}),
    row<&WorkerShown::configured>("Configured", {.describe_key = "configured"}),
    row<&WorkerShown::missing_since>("MissingSince", {.describe_key = "missing_since"}),
    row<&WorkerShown::missing_notified>("MissingNotified", {.describe_key = "missing_notified"}),
    row<&WorkerShown::build_wait_timeout>("BuildWaitTimeout", {.describe_key = "build_wait_timeout", .latent_only = true}),
    row<&WorkerShown::backend>("Backend", {.describe_key = "backend", .latent_only = true}),
    row<&WorkerShown::instance_start>("InstanceStart", {.describe_key = "start", .latent_only = true}),
    row<&WorkerShown::instance>("Instance", {.describe_key = "instance", .latent_only = true}),
    row<&WorkerShown::start_failures>("StartFailures", {.describe_key = "start_failures", .latent_only = true}),
    row<&WorkerShown::quarantined_until>("QuarantinedUntil", {.describe_key = "quarantined_until", .latent_only = true}),
    row<&WorkerShown::last_start_error>("LastStartError", {.describe_key = "last_start_error", .latent_only = true}),
};

std::vector<const char*> changed_properties(const WorkerShown& a, const WorkerShown& b) {
    Names check;
    for (const WorkerProperty& p : worker_properties) {
        check(p.differs(a, b), p.name);
    }
    return std::move(check.list);
}

std::vector<const char*> changed_properties(const Build& a, const Build& b) {
    Names check;
    check(a.worker != b.worker, "Worker");
    check(a.state != b.state, "State");
    check(a.result != b.result, "Result");
    check(a.exit_status != b.exit_status, "ExitStatus");
    check(a.properties != b.properties, "Properties");
    check(a.submitted_at != b.submitted_at, "SubmittedAt");
    check(a.started_at != b.started_at, "StartedAt");
    check(a.finished_at != b.finished_at, "FinishedAt");
    check(a.current_step != b.current_step, "CurrentStep");
    check(a.retried_as != b.retried_as, "RetriedAs");
    check(a.usage.cpu_nsec != b.usage.cpu_nsec, "CPUTimeNSec");
    check(a.usage.memory_peak != b.usage.memory_peak, "MemoryPeak");
    check(a.usage.io_read_bytes != b.usage.io_read_bytes, "IOReadBytes");
    check(a.usage.io_write_bytes != b.usage.io_write_bytes, "IOWriteBytes");
    return std::move(check.list);
}

}  // namespace by::master
