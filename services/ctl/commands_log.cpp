// log: a build's output, raw bytes to stdout, optionally followed to the end.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include <fmt/format.h>

#include "ctl/client.hpp"
#include "ctl/commands.hpp"

namespace by::ctl {
namespace {

constexpr uint64_t chunk_size = 65536;
// Between empty reads of a running build: the log has no change signal of its
// own, so poll it at this pace; a PropertiesChanged of the build wakes us early.
constexpr uint64_t poll_usec = 200000;

int on_properties_changed(sd_bus_message*, void* userdata, sd_bus_error*) {
    *static_cast<bool*>(userdata) = true;
    return 0;
}

Status write_out(const std::string& data) {
    if (std::fwrite(data.data(), 1, data.size(), stdout) != data.size() || std::fflush(stdout) != 0) {
        return Failure{exit_code::bus, fmt::format("cannot write the log: {}", std::strerror(errno))};
    }
    return ok_status();
}

// With --follow: tell about a rerun, which this command does not follow.
Status note_rerun(Client& client, uint64_t id, const std::string& path) {
    auto result = client.get_string(path, by::bus::build_iface, "Result");
    if (!result) {
        return result.error();
    }
    if (*result != "retry") {
        return ok_status();
    }
    auto next = client.get_uint64(path, by::bus::build_iface, "RetriedAs");
    if (!next) {
        return next.error();
    }
    if (*next != 0) {
        std::cerr << program_name << ": build " << id << " ended \"retry\" and was rerun as build "
                  << *next << "\n";
    }
    return ok_status();
}

}  // namespace

int run_log(const Invocation& inv) {
    po::options_description options("Options");
    options.add_options()  //
        ("follow,f", "keep printing new output until the build has finished");
    po::variables_map vm;
    uint64_t build = 0;
    if (auto rc = parse_build_id_invocation(inv, "log", options, vm, build)) {
        return *rc;
    }
    const bool follow = vm.count("follow") > 0;
    const bool json = wants_json(inv, vm);
    std::string text;  // with --json: the whole log, printed at the end

    auto client = Client::connect();
    if (!client) {
        return report(client.error());
    }
    auto path = client->get_build(build);
    if (!path) {
        return report(path.error());
    }
    bool changed = false;
    SlotPtr changed_slot;
    if (follow) {
        auto slot = client->match_signal(*path, "org.freedesktop.DBus.Properties",
                                         "PropertiesChanged", on_properties_changed, &changed);
        if (!slot) {
            return report(slot.error());
        }
        changed_slot = std::move(*slot);
    }

    uint64_t offset = 0;
    // Set once State read "finished" before a read: the log is then complete,
    // and the next empty read is its end.
    bool finished = false;
    for (;;) {
        auto chunk = client->read_log(*path, offset, chunk_size);
        if (!chunk) {
            return report(chunk.error());
        }
        if (!chunk->empty()) {
            if (json) {
                text += *chunk;
            } else if (auto w = write_out(*chunk); !w) {
                return report(w.error());
            }
            offset += chunk->size();
            continue;
        }
        if (!follow || finished) {
            break;
        }
        auto state = client->get_string(*path, by::bus::build_iface, "State");
        if (!state) {
            return report(state.error());
        }
        if (*state == "finished") {
            finished = true;
            continue;
        }
        if (auto p = client->process(); !p) {
            return report(p.error());
        }
        if (!changed) {
            if (auto w = client->wait(poll_usec); !w) {
                return report(w.error());
            }
        }
        changed = false;
    }

    if (follow) {
        if (auto s = note_rerun(*client, build, *path); !s) {
            return report(s.error());
        }
    }
    if (json) {
        auto state = client->get_string(*path, by::bus::build_iface, "State");
        if (!state) {
            return report(state.error());
        }
        auto result = client->get_string(*path, by::bus::build_iface, "Result");
        if (!result) {
            return report(result.error());
        }
        // Bytes that are not UTF-8 become U+FFFD (dump_json).
        return print_json({{"id", build}, {"path", *path}, {"state", *state}, {"result", *result}, {"log", text}});
    }
    return exit_code::success;
}

}  // namespace by::ctl
