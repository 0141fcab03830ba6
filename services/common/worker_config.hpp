// A worker's own file: /etc/buildyard/workers/NAME.ini.
//
//   master = bus                 ; "bus" (local, system bus) or HOST:PORT (remote),
//                                ; or several: HOST:PORT, HOST:PORT, ... (tried in turn)
//   password = ...               ; or password_file = PATH, or password_credential = NAME
//   basedir = /var/lib/buildyard-worker/NAME
//   admin = Jane Doe <jane@example.org>
//   kill_timeout = 10            ; seconds between SIGTERM and SIGKILL on cancel
//   reconnect_max = 60           ; remote: longest wait between reconnect attempts, seconds
//   tls = yes                    ; remote: no for plain TCP (the master must say tls = no too)
//   master_fingerprint = sha256:HEX  ; remote over TLS: the master's certificate, pinned
//                                ; (several masters: sha256:HEX, sha256:HEX, ... any of them)
//   tls_ca_file = PATH           ; or: CAs that sign the master's certificate for its host name
//   tls_certificate = PATH       ; optional client certificate (mutual TLS), with
//   tls_key = PATH               ; its key
//   umask = 022                  ; octal, for the worker and its steps
//   isolation = auto             ; or subreaper: no transient units even under systemd
//
// All keys sit outside any section or in a [worker] section. The file is
// optional for a local worker; every key has a default.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "common/config.hpp"

namespace by::config {

struct WorkerSelf {
    std::string name;
    // {"bus"} (local), or the remote masters as HOST:PORT, in the order tried.
    std::vector<std::string> masters{"bus"};
    std::string password;
    std::string basedir;           // default: $STATE_DIRECTORY or /var/lib/buildyard-worker/NAME
    std::string admin;
    unsigned kill_timeout = 10;
    unsigned reconnect_max = 60;
    bool tls = true;
    // "sha256:" + 64 lowercase hex digits each: a master's certificate is
    // accepted when it is any of them (each master has its own).
    std::vector<std::string> master_fingerprints;
    std::string tls_ca_file;
    std::string tls_certificate;
    std::string tls_key;
    mode_t umask = 022;            // the worker's, so its steps' and the files they make
    // false (isolation = subreaper): builds run without transient units even
    // where a systemd manager is reachable. Read at start only.
    bool units = true;

    bool local() const { return masters.size() == 1 && masters[0] == "bus"; }
};

// The masters of a `master =` value: "bus" alone, or HOST:PORT entries
// separated by commas. nullopt with `error` set when it is neither.
std::optional<std::vector<std::string>> parse_master_list(std::string_view value, std::string& error);
// The fingerprints of a `master_fingerprint =` value, separated by commas,
// normalized as parse_fingerprint() does. nullopt with `error` set.
std::optional<std::vector<std::string>> parse_fingerprint_list(std::string_view value, std::string& error);

// What a remote worker over TLS lacks to trust its master; empty when it has
// what it needs (or is local, or uses plain TCP).
std::string missing_trust(const WorkerSelf& self);

struct WorkerSelfResult {
    std::optional<WorkerSelf> config;
    std::vector<Error> errors;
};

// Reads `file` if it exists. A missing file is not an error when
// `required` is false (the defaults apply).
WorkerSelfResult load_worker(const std::string& name, const std::filesystem::path& file, bool required,
                             const Environment& env);

}  // namespace by::config
