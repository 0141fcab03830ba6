#include "master/build.hpp"

#include <fmt/format.h>

#include "common/duration.hpp"
#include "master/secret_mask.hpp"

namespace by::master {

std::string_view to_string(BuildState s) {
    switch (s) {
    case BuildState::pending: return "pending";
    case BuildState::running: return "running";
    case BuildState::cleanup: return "cleanup";
    case BuildState::finished: return "finished";
    }
    return "pending";
}

std::string_view to_string(Result r) {
    switch (r) {
    case Result::none: return "";
    case Result::success: return "success";
    case Result::failure: return "failure";
    case Result::exception: return "exception";
    case Result::retry: return "retry";
    case Result::cancelled: return "cancelled";
    }
    return "";
}

std::optional<BuildState> parse_build_state(std::string_view s) {
    for (auto st : {BuildState::pending, BuildState::running, BuildState::cleanup, BuildState::finished}) {
        if (to_string(st) == s) {
            return st;
        }
    }
    return std::nullopt;
}

std::optional<Result> parse_result(std::string_view s) {
    for (auto r : {Result::none, Result::success, Result::failure, Result::exception, Result::retry,
                   Result::cancelled}) {
        if (to_string(r) == s) {
            return r;
        }
    }
    return std::nullopt;
}

TransitionError start_build(Build& b, const std::string& worker,
                            const std::map<std::string, std::string>& worker_properties, uint64_t now,
                            const std::map<std::string, std::string>& worker_defaults) {
    if (b.state != BuildState::pending) {
        return TransitionError::not_pending;
    }
    b.state = BuildState::running;
    b.worker = worker;
    b.started_at = now;
    b.current_step = 0;
    b.properties = worker_defaults;
    for (const auto& [k, v] : b.requested) {
        b.properties[k] = v;
    }
    for (const auto& [k, v] : worker_properties) {
        b.properties[k] = v;
    }
    b.properties["workername"] = worker;
    return TransitionError::none;
}

TransitionError finish_build(Build& b, Result result, int exit_status, uint64_t now) {
    if (b.state == BuildState::finished) {
        return TransitionError::already_finished;
    }
    if (b.state != BuildState::running && b.state != BuildState::cleanup) {
        return TransitionError::not_running;
    }
    b.state = BuildState::finished;
    b.result = result;
    b.exit_status = exit_status;
    b.finished_at = now;
    return TransitionError::none;
}

TransitionError await_cleanup(Build& b) {
    if (b.state == BuildState::finished) {
        return TransitionError::already_finished;
    }
    if (b.state != BuildState::running) {
        return TransitionError::not_running;
    }
    b.state = BuildState::cleanup;
    return TransitionError::none;
}

TransitionError cancel_pending(Build& b, uint64_t now) {
    if (b.state == BuildState::finished) {
        return TransitionError::already_finished;
    }
    if (b.state != BuildState::pending) {
        return TransitionError::not_pending;
    }
    b.state = BuildState::finished;
    b.result = Result::cancelled;
    b.finished_at = now;
    return TransitionError::none;
}

std::optional<Build> retry_build(Build& b, uint64_t now) {
    if (finish_build(b, Result::retry, b.exit_status, now) != TransitionError::none) {
        return std::nullopt;
    }
    Build next;
    next.request_id = b.request_id ? b.request_id : b.id;
    next.builder = b.builder;
    next.submitted_at = now;
    // The rerun starts from what was submitted, not from the merged set
    // of the worker that failed: the next worker's properties apply.
    next.requested = b.requested;
    next.properties = b.requested;
    return next;
}

std::string log_trailer(const Build& b) {
    if (b.state != BuildState::finished || b.result == Result::success || b.started_at == 0) {
        return {};
    }
    const uint64_t took = b.finished_at > b.started_at ? b.finished_at - b.started_at : 0;
    const std::string exit = b.exit_status >= 0 ? fmt::format("exit status {}, ", b.exit_status) : "";
    return fmt::format("--- {}: {}after {}\n", to_string(b.result), exit, format_duration(took));
}

namespace {

std::string variable(std::string name, std::string_view key) {
    for (char c : key) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        name.push_back(ok ? c : '_');
    }
    return name;
}

}  // namespace

std::map<std::string, std::string> step_environment(const Build& b, const std::map<std::string, std::string>& secrets) {
    std::map<std::string, std::string> env;
    env["BUILDYARD_BUILD_ID"] = std::to_string(b.id);
    env["BUILDYARD_BUILDER"] = b.builder;
    env["BUILDYARD_WORKER"] = b.worker;
    for (const auto& [k, v] : b.properties) {
        if (is_secret_property(k)) {
            env[variable("BUILDYARD_SECRET_", std::string_view(k).substr(secret_prefix.size()))] = v;
        } else {
            env[variable("BUILDYARD_PROP_", k)] = v;
        }
    }
    for (const auto& [k, v] : secrets) {
        env[variable("BUILDYARD_SECRET_", k)] = v;
    }
    return env;
}

}  // namespace by::master
