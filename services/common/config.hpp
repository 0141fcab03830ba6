// The master's configuration: /etc/buildyard/master.ini plus master.d/*.ini.
// Loading is pure (files in, struct or errors out) so it is unit-tested
// directly and shared by the master, the generator and latentd.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "common/build_limits.hpp"

namespace by::config {

// Where a setting came from, for error messages.
struct Origin {
    std::string file;
    int line = 0;
};

// One mistake, printed as "FILE:LINE: [section] key: message".
struct Error {
    std::string file;
    int line = 0;           // 0: the whole file (e.g. it cannot be read)
    std::string section;    // as written, e.g. "worker bot1"; empty if none
    std::string key;        // empty if the error is about the section itself
    std::string message;

    std::string str() const;
};

enum class WorkerType { standard, local, latent };
// As `type =` spells it and Worker1.Type shows it.
std::string_view to_string(WorkerType t);

struct Worker {
    std::string name;
    WorkerType type = WorkerType::standard;
    // The resolved password (from password, password_file or
    // password_credential); empty for local workers.
    std::string password;
    unsigned max_builds = 0;                 // 0: no limit
    uint64_t keepalive_interval = 3600;      // seconds; 0: none
    uint64_t keepalive_timeout = 30;         // seconds to wait for a keepalive reply
    // Seconds a build of a lost worker waits in "cleanup" for the worker to
    // come back and confirm its processes are gone; -1: keepalive_timeout.
    int64_t lost_build_grace = -1;
    std::vector<std::string> notify_on_missing;
    uint64_t missing_timeout = 3600;         // seconds; 0: disabled
    std::map<std::string, std::string> properties;          // win over a build's own
    std::map<std::string, std::string> default_properties;  // a build's own win over these
    int64_t build_wait_timeout = 600;        // latent only; <0: never stop
    std::string backend;                     // latent only, e.g. "libvirt"
    std::string master_address;              // latent only: HOST:PORT the instance dials
    std::map<std::string, std::string> backend_options;  // "libvirt.uri" -> ...
    // Mutual TLS: the worker must present a client certificate that is
    // signed by this CA (PEM file) and/or has this fingerprint.
    std::string tls_client_ca;
    std::string tls_client_fingerprint;      // "sha256:" + 64 lowercase hex digits
    Origin origin;                           // the [worker NAME] header
};

// lost_build_grace in seconds, its default resolved.
uint64_t lost_build_grace(const Worker& w);

struct Builder {
    std::string name;
    std::vector<std::string> workers;
    std::vector<std::string> steps;          // in numeric order of step.N
    BuildLimits limits;                      // applied to each build's unit
    // secret.KEY, resolved: KEY -> value. Steps get BUILDYARD_SECRET_KEY;
    // the value is shown nowhere and masked in build logs.
    std::map<std::string, std::string> secrets;
    Origin origin;
};

enum class StartTls { no, if_available, required };

struct Mail {
    bool configured = false;                 // a [mail] section exists
    std::string fromaddr;                    // default buildyard@<hostname>
    std::string relayhost = "localhost";
    unsigned port = 25;
    StartTls starttls = StartTls::if_available;
    std::string username;
    std::string password;                    // resolved from password_file / password_credential
    bool builders_set = false;               // "builders =" present (even if empty)
    std::vector<std::string> builders;
    std::vector<std::string> recipients;
    std::string tls_ca_file;                 // empty: the system's trusted certificates
    uint64_t retry_interval_usec = 30'000'000;          // before a failed mail is first tried again
    uint64_t give_up_after_usec = 24ULL * 3600'000'000;  // after queueing, a mail not sent is given up
};

struct Master {
    bool declared = false;                   // a [master] section exists
    std::string name;                        // default: the host name
    std::string listen = "0.0.0.0:9989";     // empty: no TCP listener
    std::string metrics;                     // IP:PORT of /metrics; empty: none
    std::vector<uid_t> trusted_uids;
    bool tls = true;                         // false: plain TCP for remote workers (tls = no)
    // PEM files of the TLS identity: tls_certificate and tls_key, else the
    // credentials tls-certificate and tls-key; empty: a generated one.
    std::string tls_certificate;
    std::string tls_key;
    uint64_t auth_timeout_usec = 10'000'000;            // for a remote connection to authenticate
    uint64_t duplicate_ping_timeout_usec = 10'000'000;  // for an attached link to answer a second login
    uint64_t latent_lease_usec = 300'000'000;           // a latent machine's lease beyond its start timeout
    // A libpq connection URI (no password in it); empty: SQLite, state.db
    // in the state directory. Fixed for the master's life (a reload that
    // changes it is refused).
    std::string database;
    std::string database_password;           // from database_password (credential: or file:), may be empty
    // With a PostgreSQL database: how often this master heartbeats, and how
    // old a master's heartbeat may be before the others hold it dead
    // (more than twice the heartbeat).
    uint64_t cluster_heartbeat_usec = 2'000'000;
    uint64_t cluster_timeout_usec = 10'000'000;
};

// [latentd]: buildyard-latentd's deadlines and intervals.
struct Latentd {
    uint64_t create_timeout_usec = 300'000'000;
    uint64_t destroy_timeout_usec = 120'000'000;        // on top of the shutdown grace
    uint64_t health_interval_usec = 10'000'000;
    uint64_t reap_interval_usec = 60'000'000;
    uint64_t lease_check_interval_usec = 1'000'000;
};

struct Config {
    Master master;
    Mail mail;
    Latentd latentd;
    std::map<std::string, Worker> workers;
    std::map<std::string, Builder> builders;
    std::vector<std::string> files;          // every file read, in order
    // Settings that load but probably do not do what the admin wants, e.g. a
    // latent worker's default master_address; the daemons log them.
    std::vector<Error> warnings;
};

struct LoadResult {
    std::optional<Config> config;            // set only when errors is empty
    std::vector<Error> errors;
};

// Environment the loader needs, injectable for tests.
struct Environment {
    std::string hostname;                    // default for [master] name and fromaddr
    std::string credentials_directory;       // $CREDENTIALS_DIRECTORY, may be empty
    std::string state_directory;             // first path of $STATE_DIRECTORY, may be empty
    // false: password_file and password_credential are not read (the
    // generator runs before credentials exist and needs no secrets).
    bool read_secrets = true;
};
Environment current_environment();

// Reads `main_file`, then every *.ini in `<dir of main_file>/master.d/` in
// lexical order. A later file wins for each key it sets. Within one file a
// repeated section or key is an error.
//
// Every mistake is collected (not just the first), sorted by file and line.
// Syntax as inih reads it: comments start with ';' or '#' at the start of a
// line, or with ';' after whitespace inside a line. Indented continuation
// lines and lines longer than 198 characters are errors.
LoadResult load(const std::filesystem::path& main_file, const Environment& env);
LoadResult load(const std::filesystem::path& main_file);

// load(), plus what only a running master needs: a [master] section and at
// least one worker. An empty or half-written master.ini is refused (naming
// the file) rather than taken as "no workers", which would stop the fleet.
// The generator and latentd use load(): they have nothing to stop.
LoadResult load_for_master(const std::filesystem::path& main_file, const Environment& env);
LoadResult load_for_master(const std::filesystem::path& main_file);

// Systemd's escaping of a unit instance name (as systemd-escape does).
std::string escape_unit_instance(const std::string& name);

// "HOST:PORT" as used by [master] listen and a worker's master: HOST is a
// host name, an IPv4 literal or a bracketed IPv6 literal ("[::1]:9989"),
// PORT is 1..65535. `host` is returned without brackets.
struct HostPort {
    std::string host;
    uint16_t port = 0;
};
std::optional<HostPort> parse_host_port(std::string_view text);

// "sha256:" and 64 hex digits (any case, colons between byte pairs
// allowed), in the form certificates' fingerprints are shown: lowercase,
// no colons. nullopt when it is not one.
std::optional<std::string> parse_fingerprint(std::string_view text);

// Worker names: 1-64 chars of [A-Za-z0-9._-], not starting with '.' or '-'.
bool valid_worker_name(const std::string& name);

}  // namespace by::config
