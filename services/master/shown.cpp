#include "master/shown.hpp"

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

}  // namespace

std::vector<const char*> changed_properties(const WorkerShown& a, const WorkerShown& b) {
    Names check;
    check(a.type != b.type, "Type");
    check(a.state != b.state, "State");
    check(a.connected != b.connected, "Connected");
    check(a.paused != b.paused, "Paused");
    check(a.pause_reason != b.pause_reason, "PauseReason");
    check(a.max_builds != b.max_builds, "MaxBuilds");
    check(a.running_builds != b.running_builds, "RunningBuilds");
    check(a.properties != b.properties, "Properties");
    check(a.default_properties != b.default_properties, "DefaultProperties");
    check(a.info != b.info, "Info");
    check(a.keepalive_interval != b.keepalive_interval, "KeepaliveInterval");
    check(a.missing_timeout != b.missing_timeout, "MissingTimeout");
    check(a.notify_on_missing != b.notify_on_missing, "NotifyOnMissing");
    check(a.last_connected != b.last_connected, "LastConnected");
    check(a.last_disconnected != b.last_disconnected, "LastDisconnected");
    check(a.configured != b.configured, "Configured");
    check(a.missing_since != b.missing_since, "MissingSince");
    check(a.missing_notified != b.missing_notified, "MissingNotified");
    check(a.build_wait_timeout != b.build_wait_timeout, "BuildWaitTimeout");
    check(a.backend != b.backend, "Backend");
    check(a.instance_start != b.instance_start, "InstanceStart");
    check(a.instance != b.instance, "Instance");
    check(a.start_failures != b.start_failures, "StartFailures");
    check(a.quarantined_until != b.quarantined_until, "QuarantinedUntil");
    check(a.last_start_error != b.last_start_error, "LastStartError");
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
