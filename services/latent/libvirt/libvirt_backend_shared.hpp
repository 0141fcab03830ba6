// What the two files of LibvirtBackend share (libvirt_backend.cpp: a start's
// domain and overlay; libvirt_survey.cpp: what is found on the hosts): a
// worker's libvirt.* keys, reading its domain template, and the words of
// their messages. For those two files only.
#pragma once

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "latent/backend.hpp"

namespace by::latent::libvirt {

// What a call whose deadline passed returns.
inline constexpr const char* cancelled_message = "cancelled: the call's deadline passed";

// The worker's libvirt.KEY; empty if it is unset or there is no worker.
inline std::string option(const config::Worker* w, const std::string& key) {
    if (!w) {
        return "";
    }
    auto it = w->backend_options.find("libvirt." + key);
    return it == w->backend_options.end() ? "" : it->second;
}

// A whole file: the worker's domain template.
inline Outcome<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return {"", std::string(std::strerror(errno))};
    }
    std::ostringstream s;
    s << in.rdbuf();
    return {s.str(), ""};
}

// The errors of one call, in one message.
inline std::string join(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) {
        out += (out.empty() ? "" : "; ") + p;
    }
    return out;
}

// Whose a domain is, by its tag, for a message.
inline std::string describe_owner(const std::optional<Tag>& tag) {
    if (!tag) {
        return "it carries no buildyard tag";
    }
    return "it belongs to worker " + tag->worker + " of master " + tag->master + " (start " + tag->start + ")";
}

}  // namespace by::latent::libvirt
