// What the OpenStack backend sends and how it reads the answers, free of
// I/O: Keystone's token request and answer, when a token is renewed, which
// endpoint of the catalog is used, which Nova microversion is pinned, how a
// flavor, image or network name becomes an ID, which answers are retried,
// and Nova's server bodies (openstack_keystone.cpp: Keystone, the catalog and
// the microversion; openstack_api.cpp: the rest). Unit-tested
// (tests/unit/test_openstack_api.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/config_openstack.hpp"
#include "latent/backend.hpp"
#include "latent/openstack/openstack_cloud.hpp"

namespace by::latent::openstack {

inline constexpr const char* meta_owner = "buildyard:owner";
inline constexpr const char* meta_worker = "buildyard:worker";
inline constexpr const char* meta_start = "buildyard:start";

// The string at `key` of object `j`; empty if there is none.
inline std::string str(const nlohmann::json& j, const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

// At most `max` bytes of a server's answer, for an error message.
inline std::string shortened(std::string s, std::size_t max = 300) {
    if (s.size() > max) {
        s.resize(max);
        s += "...";
    }
    return s;
}

// --- Keystone --------------------------------------------------------------

// The body of POST /v3/auth/tokens for `cloud`: password or application
// credential, scoped to the project (an application credential carries
// its own scope).
nlohmann::json token_request(const Cloud& cloud);

struct Endpoint {
    std::string interface;
    std::string region;
    std::string url;
};

struct Service {
    std::string type;  // "compute", "image", "network", "identity"
    std::vector<Endpoint> endpoints;
};

struct Token {
    std::string id;  // X-Subject-Token
    int64_t issued_at = 0;
    int64_t expires_at = 0;
    std::string project_id;
    std::vector<Service> catalog;
};

// Keystone's answer: the token from the X-Subject-Token header, the body's
// times, project and catalog. nullopt with `error`.
std::optional<Token> parse_token(std::string_view body, const std::string& subject_token, std::string& error);

// Whether a token may still be used at `now` (seconds since the epoch): up
// to a margin before it expires, half its life but at most five minutes.
// Nova hands the user's token on to Glance and Neutron while it works on a
// call: a token that ends meanwhile fails the call ("Not authorized for
// image"), so the margin covers a slow call, not only the request's trip.
bool token_fresh(const Token& token, int64_t now);

// The URL of `type`'s endpoint with `interface` in `region` (empty: the
// only region the service has there), without a trailing slash. nullopt
// with `error` naming what the catalog offers instead.
std::optional<std::string> endpoint_url(const std::vector<Service>& catalog, const std::string& type,
                                        const std::string& interface, const std::string& region,
                                        std::string& error);

// --- Nova's microversion ------------------------------------------------------

// The range the backend is written for: 2.37 for "networks": "none" and
// "auto"; nothing past 2.79 is relied on.
inline constexpr const char* min_microversion = "2.37";
inline constexpr const char* max_microversion = "2.79";

// "2.37" -> 237-like ordering; nullopt if not MAJOR.MINOR.
std::optional<std::pair<unsigned, unsigned>> parse_microversion(std::string_view text);

// The microversion to pin from Nova's version document (GET of the compute
// endpoint's version URL: {"version": {...}} or {"versions": [...]}): the
// highest both sides know, "2.N". nullopt with `error` when Nova is too old
// or the document is not one.
std::optional<std::string> choose_microversion(std::string_view document, std::string& error);

// The compute endpoint without the project ID some catalogs append
// (".../v2.1/PROJECT" -> ".../v2.1"): where Nova's version document is.
std::string version_url(const std::string& compute_url, const std::string& project_id);

// Glance's and Neutron's catalog entries often name no API version.
std::string with_version(const std::string& url, const std::string& version);  // "v2", "v2.0"

// --- Names to IDs ----------------------------------------------------------

struct Named {
    std::string id;
    std::string name;
};

// The ID `wanted` stands for among `candidates`: one whose ID is `wanted`,
// else the only one named `wanted`. nullopt with `error` when none is, or
// when several share the name. `what`: "flavor", "image", "network".
std::optional<std::string> resolve(const std::string& what, const std::string& wanted,
                                   const std::vector<Named>& candidates, std::string& error);

// The {"id", "name"} items of `key` ("flavors", "images", "networks") in a
// list answer, or of the single `single` object ("flavor", "network") or
// a bare object (Glance's image).
std::vector<Named> parse_named(std::string_view body, const std::string& key);

// --- Answers ---------------------------------------------------------------

enum class Next {
    done,    // 2xx (or a status the caller expects, such as 404)
    retry,   // no answer, 5xx, 409 (a busy server) or 429: again after a back-off
    reauth,  // 401: a new token, then again
    fail,
};
Next classify(long http_status);

// After a call's token was refused (401) for the nth time in that call
// (n = 1, 2, ...): how long to wait before the next renewal, or nothing
// when the call should give up. The first renewal is at once. Keystone
// keeps a revocation to the whole second (its events' issued_before has
// no fraction), so a token issued in the second of a revocation is refused
// as well: the second renewal waits until that second is surely over.
std::optional<std::chrono::milliseconds> renewal_pause(unsigned refusals);

// The message of an OpenStack error body: Nova's {"itemNotFound":
// {"message": ...}}, Keystone's {"error": {"message": ...}}, Neutron's
// {"NeutronError": {...}}, or the start of a text body.
std::string error_message(std::string_view body);

// --- Servers ---------------------------------------------------------------

struct Resolved {
    std::string flavor_id;
    std::string image_id;
    std::string network;  // "none", "auto" or a network ID
};

// The body of POST /servers for `spec`: named instance_name(spec.tag),
// with the owner metadata and openstack.metadata, the identity in
// `user_data_base64`, a config drive when asked, and a new volume from the
// image when openstack.volume_size is set (deleted with the server).
nlohmann::json create_request(const StartSpec& spec, const config::OpenStackOptions& options,
                              const Resolved& resolved, const std::string& user_data_base64);

struct Server {
    std::string id;
    std::string name;
    std::string status;  // BUILD, ACTIVE, ERROR, SHUTOFF, DELETED, ...
    std::string task_state;
    std::string fault;   // fault.message, when Nova gives one
    std::map<std::string, std::string> metadata;
};

Tag tag_of(const Server& s);
bool tagged(const Server& s, const Tag& tag);
// Whether a server in `status` is on its way out or out: not running a worker.
bool ending(const Server& s);
// "server ID is STATUS (FAULT)", for errors and health reports.
std::string status_text(const Server& s);

// {"server": {...}} -> the server; nullopt if it is not one.
std::optional<Server> parse_server(std::string_view body);
// {"servers": [...], "servers_links": [...]} -> the servers, and the
// marker of the next page (empty: the last page).
std::vector<Server> parse_servers(std::string_view body, std::string& next_marker, std::string& error);

}  // namespace by::latent::openstack
