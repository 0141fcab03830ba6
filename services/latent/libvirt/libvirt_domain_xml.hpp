// The domain XML of one start, made from the worker's template (libxml2),
// and what the backend reads back from a domain's XML. Pure: strings in,
// strings out, so the edits are unit-tested without libvirt.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "latent/backend.hpp"

namespace by::latent::libvirt {

// The namespace of the owner tag in <metadata>; virDomainGetMetadata finds
// the tag by it.
inline constexpr const char* tag_namespace = "https://buildyard.org/xmlns/latent/1";
inline constexpr const char* tag_prefix = "buildyard";

struct DomainSettings {
    std::string name;            // buildyard-<master>-<worker>
    Tag tag;
    std::string master_address;  // HOST:PORT
    std::string token;
    std::string overlay;         // empty: the template's disks stay as they are
    unsigned long long memory_mib = 0;  // 0: the template's
    unsigned cpus = 0;                  // 0: the template's
    std::string master_fingerprint;     // empty: none given (tls = no)
};

// The template with the start's edits: <name>, no <uuid>, the tag in
// <metadata>, memory and vCPUs, the overlay as the first disk, the SMBIOS
// type 11 credentials with <os><smbios mode='sysinfo'/>, and the kernel
// command line if the template boots a kernel directly.
Outcome<std::string> edit_domain_template(const std::string& template_xml, const DomainSettings& settings);

// The tag in the element that virDomainGetMetadata returns, or nothing if it
// is not a complete tag.
std::optional<Tag> parse_tag_element(const std::string& element_xml);

// Files the domain's serial ports and consoles write to (<log file=...>,
// or <source path=...> of type='file'), in document order, without repeats.
std::vector<std::string> console_log_files(const std::string& domain_xml);

}  // namespace by::latent::libvirt
