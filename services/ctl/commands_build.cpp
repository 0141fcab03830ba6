// submit (with --wait) and cancel.
#include <cstdint>
#include <iostream>
#include <map>

#include <fmt/format.h>

#include "common/build_limits.hpp"
#include "ctl/client.hpp"
#include "ctl/commands.hpp"

namespace by::ctl {
namespace {

// What `submit --wait` learns from signals while it waits.
struct WaitState {
    std::map<std::string, std::string> finished;  // build path -> result, from BuildFinished
    bool master_gone = false;
};

int on_build_finished(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* st = static_cast<WaitState*>(userdata);
    const char* path = nullptr;
    const char* result = nullptr;
    if (sd_bus_message_read(m, "os", &path, &result) >= 0) {
        st->finished[path] = result;
    }
    return 0;
}

int on_master_owner(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* st = static_cast<WaitState*>(userdata);
    const char *name = nullptr, *old_owner = nullptr, *new_owner = nullptr;
    // The master we submitted to lost its name: its BuildFinished will never come.
    if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) >= 0 && old_owner &&
        old_owner[0] != '\0') {
        st->master_gone = true;
    }
    return 0;
}

// The result of one build, once it has finished.
Expected<std::string> wait_for_build(Client& client, WaitState& st, uint64_t id,
                                     const std::string& path) {
    // The BuildFinished match was active before this build existed, so a finish
    // is either already queued as a signal or still to come; reading State
    // covers a build that finished before its signal was dispatched.
    if (auto p = client.process(); !p) {
        return p.error();
    }
    if (auto it = st.finished.find(path); it != st.finished.end()) {
        return it->second;
    }
    auto state = client.get_string(path, by::bus::build_iface, "State");
    if (!state) {
        return state.error();
    }
    if (*state == "finished") {
        return client.get_string(path, by::bus::build_iface, "Result");
    }
    for (;;) {
        if (auto p = client.process(); !p) {
            return p.error();
        }
        if (auto it = st.finished.find(path); it != st.finished.end()) {
            return it->second;
        }
        if (st.master_gone) {
            return Failure{exit_code::bus,
                           fmt::format("buildyard-masterd stopped while waiting for build {}", id)};
        }
        if (auto w = client.wait(UINT64_MAX); !w) {
            return w.error();
        }
    }
}

struct Outcome {
    uint64_t id = 0;
    std::string result;
};

// Waits for build `id` and, while it ends "retry", for the build rerunning it.
Expected<Outcome> wait_for_request(Client& client, WaitState& st, uint64_t id, std::string path) {
    for (;;) {
        auto result = wait_for_build(client, st, id, path);
        if (!result) {
            return result.error();
        }
        if (*result != "retry") {
            return Outcome{id, *result};
        }
        auto next = client.get_uint64(path, by::bus::build_iface, "RetriedAs");
        if (!next) {
            return next.error();
        }
        if (*next == 0) {
            return Failure{exit_code::exception,
                           fmt::format("build {} ended \"retry\" but names no rerun", id)};
        }
        std::cerr << program_name << ": build " << id << " ended \"retry\"; waiting for its rerun, build "
                  << *next << "\n";
        auto next_path = client.get_build(*next);
        if (!next_path) {
            return next_path.error();
        }
        id = *next;
        path = std::move(*next_path);
    }
}

// What build `id` used (Build1 CPUTimeNSec, MemoryPeak, IOReadBytes,
// IOWriteBytes); unknown where the master cannot say.
BuildUsage usage_of(Client& client, uint64_t id) {
    BuildUsage u;
    auto path = client.get_build(id);
    if (!path) {
        return u;
    }
    for (auto [name, field] : {std::pair{"CPUTimeNSec", &BuildUsage::cpu_nsec},
                               std::pair{"MemoryPeak", &BuildUsage::memory_peak},
                               std::pair{"IOReadBytes", &BuildUsage::io_read_bytes},
                               std::pair{"IOWriteBytes", &BuildUsage::io_write_bytes}}) {
        if (auto v = client.get_uint64(*path, by::bus::build_iface, name)) {
            u.*field = *v;
        }
    }
    return u;
}

}  // namespace

int run_submit(const Invocation& inv) {
    po::options_description options("Options");
    options.add_options()  //
        ("property,p", po::value<std::vector<std::string>>()->value_name("KEY=VALUE"),
         "set build property KEY to VALUE; may be given more than once")  //
        ("wait", "wait until the request has a final result, following reruns, and exit "
                 "with a code for it");
    po::options_description hidden;
    hidden.add_options()("builder", po::value<std::string>());
    po::positional_options_description positional;
    positional.add("builder", 1);
    po::variables_map vm;
    if (auto rc = parse_invocation(inv, "submit", options, &hidden, &positional, vm)) {
        return *rc;
    }
    if (!vm.count("builder")) {
        return usage_error(std::cerr, "submit", "missing BUILDER");
    }
    std::string builder = vm["builder"].as<std::string>();
    auto props = parse_properties(vm.count("property")
                                      ? vm["property"].as<std::vector<std::string>>()
                                      : std::vector<std::string>{});
    if (!props) {
        return usage_error(std::cerr, "submit", props.error().message);
    }
    bool wait = vm.count("wait") > 0;
    bool json = wants_json(inv, vm);

    auto client = Client::connect();
    if (!client) {
        return report(client.error());
    }
    // Both matches are active before the build exists, so no finish goes unseen.
    WaitState st;
    SlotPtr finished_slot, owner_slot;
    if (wait) {
        auto slot = client->match_signal(by::bus::master_path, by::bus::master_iface,
                                         "BuildFinished", on_build_finished, &st);
        if (!slot) {
            return report(slot.error());
        }
        finished_slot = std::move(*slot);
        auto owner = client->match_master_owner(on_master_owner, &st);
        if (!owner) {
            return report(owner.error());
        }
        owner_slot = std::move(*owner);
    }

    auto path = client->submit_build(builder, *props);
    if (!path) {
        return report(path.error());
    }
    auto id = client->get_uint64(*path, by::bus::build_iface, "Id");
    if (!id) {
        return report(id.error());
    }
    if (!json) {
        std::cout << *id << "\n" << std::flush;
    }
    if (!wait) {
        return json ? print_json({{"id", *id}, {"path", *path}}) : exit_code::success;
    }

    auto outcome = wait_for_request(*client, st, *id, *path);
    if (!outcome) {
        return report(outcome.error());
    }
    const BuildUsage used = usage_of(*client, outcome->id);
    if (json) {
        print_json({{"id", *id},
                    {"path", *path},
                    {"result", outcome->result},
                    {"final_id", outcome->id},
                    {"usage", usage_to_map(used)}});
    } else {
        std::cout << "build " << outcome->id << ": " << outcome->result << "\n";
        if (const std::string text = describe_usage(used); !text.empty()) {
            std::cout << "used: " << text << "\n";
        }
    }
    return exit_code_for_result(outcome->result);
}

int run_cancel(const Invocation& inv) {
    po::options_description options("Options");
    po::variables_map vm;
    uint64_t build = 0;
    if (auto rc = parse_build_id_invocation(inv, "cancel", options, vm, build)) {
        return *rc;
    }
    auto client = Client::connect();
    if (!client) {
        return report(client.error());
    }
    auto path = client->get_build(build);
    if (!path) {
        return report(path.error());
    }
    if (auto s = client->cancel(*path); !s) {
        return report(s.error());
    }
    return wants_json(inv, vm) ? print_json({{"ok", true}}) : exit_code::success;
}

}  // namespace by::ctl
