#include "latent/libvirt/libvirt_overlay.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <sys/stat.h>
#include <unistd.h>

#include "common/config.hpp"
#include "latent/run_program.hpp"

namespace by::latent::libvirt {

namespace {

constexpr std::string_view suffix = ".qcow2";

bool valid_start(const std::string& s) {
    return s.size() == 32 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Makes `dir` and its missing parents. qemu (another user under
// qemu:///system) must reach the overlay, whatever latentd's umask is, so
// each directory made here is 0755.
std::string make_directories(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> missing;
    for (auto p = dir; !p.empty() && p != p.parent_path(); p = p.parent_path()) {
        struct stat st {};
        if (::stat(p.c_str(), &st) == 0) {
            break;
        }
        missing.push_back(p);
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        if (::mkdir(it->c_str(), 0755) == 0) {
            ::chmod(it->c_str(), 0755);
        } else if (errno != EEXIST) {
            return "cannot create directory " + it->string() + ": " + std::strerror(errno);
        }
    }
    return "";
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

}  // namespace

std::string tag_problem(const Tag& tag) {
    if (!config::valid_worker_name(tag.master)) {
        return "invalid master name '" + tag.master + "'";
    }
    if (!config::valid_worker_name(tag.worker)) {
        return "invalid worker name '" + tag.worker + "'";
    }
    if (!valid_start(tag.start)) {
        return "invalid start id '" + tag.start + "': expected 32 lowercase hex digits";
    }
    return "";
}

std::string overlay_path(const std::string& overlay_dir, const Tag& tag) {
    return (std::filesystem::path(overlay_dir) / tag.master / (tag.worker + "." + tag.start)).string() +
           std::string(suffix);
}

std::optional<Tag> parse_overlay_path(const std::string& path) {
    const std::filesystem::path p(path);
    std::string name = p.filename().string();
    if (!p.is_absolute() || !name.ends_with(suffix)) {
        return std::nullopt;
    }
    name.resize(name.size() - suffix.size());
    // Worker names may hold dots; the start never does.
    const auto dot = name.rfind('.');
    if (dot == std::string::npos) {
        return std::nullopt;
    }
    Tag tag{p.parent_path().filename().string(), name.substr(0, dot), name.substr(dot + 1)};
    if (!tag_problem(tag).empty()) {
        return std::nullopt;
    }
    return tag;
}

Outcome<std::vector<Found>> list_overlays(const std::string& overlay_dir, const std::string& master) {
    Outcome<std::vector<Found>> out;
    const auto dir = std::filesystem::path(overlay_dir) / master;
    std::error_code ec;
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) {
        if (ec != std::errc::no_such_file_or_directory) {
            out.error = "cannot list " + dir.string() + ": " + ec.message();
        }
        return out;
    }
    for (const auto& entry : it) {
        if (!entry.is_regular_file(ec)) {
            continue;
        }
        const std::string path = entry.path().string();
        if (auto tag = parse_overlay_path(path); tag && tag->master == master) {
            out.value.push_back(Found{*tag, "overlay", path, false});
        }
    }
    return out;
}

Outcome<bool> create_overlay(const OverlayTool& tool, const std::string& base, const std::string& path,
                             const Cancelled& cancelled) {
    struct stat st {};
    if (::stat(base.c_str(), &st) < 0) {
        return {false, "base image " + base + ": " + std::strerror(errno)};
    }
    if (!S_ISREG(st.st_mode)) {
        return {false, "base image " + base + ": not a regular file"};
    }
    if (auto problem = make_directories(std::filesystem::path(path).parent_path()); !problem.empty()) {
        return {false, problem};
    }
    auto run = run_program({tool.qemu_img, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, path},
                           tool.timeout_usec, cancelled);
    if (run.ok() && run.value.exit_status != 0) {
        run.error = tool.qemu_img + " failed (exit status " + std::to_string(run.value.exit_status) +
                    "): " + trimmed(run.value.output);
    }
    if (run.ok() && ::chmod(path.c_str(), 0660) < 0) {
        run.error = "chmod " + path + ": " + std::strerror(errno);
    }
    if (!run.ok()) {
        ::unlink(path.c_str());  // whatever a killed or failed qemu-img wrote
        return {false, "cannot create overlay " + path + ": " + run.error};
    }
    return {true, ""};
}

Outcome<bool> remove_overlay(const std::string& path) {
    if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
        return {false, "cannot remove overlay " + path + ": " + std::strerror(errno)};
    }
    return {true, ""};
}

}  // namespace by::latent::libvirt
