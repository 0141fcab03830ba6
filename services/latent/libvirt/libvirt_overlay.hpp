// The copy-on-write overlays that each start boots from. The path is the
// tag: <overlay_dir>/<master>/<worker>.<start>.qcow2, so a crash between
// making the overlay and starting the domain leaves a file the reaper can
// attribute.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "latent/backend.hpp"

namespace by::latent::libvirt {

// What the tag must look like before it goes into a path or a domain name:
// master and worker as config::valid_worker_name, start 32 lowercase hex.
// Returns what is wrong, or an empty string.
std::string tag_problem(const Tag& tag);

std::string overlay_path(const std::string& overlay_dir, const Tag& tag);

// The tag of an overlay path (the master is its directory's name), or
// nothing if the path is not one of ours.
std::optional<Tag> parse_overlay_path(const std::string& path);

// Every overlay of `master` under `overlay_dir`; a missing directory has none.
Outcome<std::vector<Found>> list_overlays(const std::string& overlay_dir, const std::string& master);

struct OverlayTool {
    std::string qemu_img = "qemu-img";
    uint64_t timeout_usec = 60'000'000;
};

// Makes `path` (creating its directories) as a qcow2 overlay on the qcow2
// `base`, mode 0660. Leaves nothing behind when it fails.
Outcome<bool> create_overlay(const OverlayTool& tool, const std::string& base, const std::string& path,
                             const Cancelled& cancelled);

// Removes `path`; a path that is already gone is success.
Outcome<bool> remove_overlay(const std::string& path);

}  // namespace by::latent::libvirt
