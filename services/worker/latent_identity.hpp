// Who a latent worker is: `buildyard-workerd --latent` learns its name, its
// master's HOST:PORT and the one-time token of this start from, in order,
//   1. systemd credentials: $CREDENTIALS_DIRECTORY/buildyard.{worker,master,token}
//      (a systemd guest fills them from SMBIOS io.systemd.credential: strings);
//   2. the kernel command line: buildyard.worker= buildyard.master= buildyard.token=
//      (direct kernel boot);
//   3. the environment: BUILDYARD_WORKER_NAME, BUILDYARD_MASTER, BUILDYARD_TOKEN
//      (containers);
//   4. the user data of a cloud instance, from its metadata service
//      (cloud_metadata.hpp): buildyard.worker=, buildyard.master= and
//      buildyard.token= lines (EC2, OpenStack).
// Beside them, the same source may give the master's certificate
// fingerprint (buildyard.master_fingerprint, BUILDYARD_MASTER_FINGERPRINT, a
// buildyard.master_fingerprint= line of the user data), which the worker
// then pins; without it the worker speaks plain TCP, as a master with
// tls = no does.
// The first source that gives any piece must give all three: a partial
// source is an error, never topped up from a later one, so that an instance
// cannot mix one start's name with another start's token.
//
// Resolving is pure (the sources come in as strings); read_latent_sources()
// does the reading.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace by::worker {

struct LatentIdentity {
    std::string name;
    std::string master;   // HOST:PORT
    std::string token;    // the key of the Handshake1 exchange, in place of a password
    std::string master_fingerprint;  // "sha256:..." to pin; empty: plain TCP
    std::string source;   // where it came from, for the log
};

struct LatentSources {
    // $CREDENTIALS_DIRECTORY, empty when unset.
    std::string credentials_directory;
    // The credential files that exist: "buildyard.worker" -> content
    // (buildyard.master_fingerprint included).
    std::map<std::string, std::string> credentials;
    // A credential file that exists but cannot be read, with why.
    std::string credentials_error;
    // /proc/cmdline; nullopt when it cannot be read.
    std::optional<std::string> cmdline;
    // BUILDYARD_WORKER_NAME, BUILDYARD_MASTER, BUILDYARD_TOKEN (and
    // BUILDYARD_MASTER_FINGERPRINT) when set.
    std::map<std::string, std::string> environment;
    // The instance's user data, when it was fetched and there is some;
    // where it came from; and why fetching it failed, if it did.
    std::optional<std::string> user_data;
    std::string user_data_source;
    std::string user_data_error;
};

struct LatentIdentityResult {
    std::optional<LatentIdentity> identity;
    std::string error;    // set when identity is not
    // No source gave any piece (not even a partial one): the next, slower
    // source (the metadata service) may be asked.
    bool none = false;
};

// One kernel command-line parameter: value is nullopt for a bare word.
struct KernelParameter {
    std::string name;
    std::optional<std::string> value;

    bool operator==(const KernelParameter&) const = default;
};

// Splits a kernel command line the way the kernel does (lib/cmdline.c):
// words separated by whitespace, double quotes group blanks into a word and
// are dropped around the value ('key="a b"') or around the whole word
// ('"key=a b"'); the first '=' splits name from value. Parameters after "--"
// (the init's arguments) are kept too: nothing else claims buildyard.*.
std::vector<KernelParameter> split_kernel_cmdline(std::string_view cmdline);

LatentIdentityResult resolve_latent_identity(const LatentSources& sources);

// The buildyard.* lines of user data; other lines (a cloud-init part, a
// comment) are left alone, as the user data may serve other readers too.
std::map<std::string, std::string> parse_user_data(std::string_view text);

// Reads the sources from this process's environment and /proc/cmdline
// (not the metadata service: see cloud_metadata.hpp).
LatentSources read_latent_sources();

}  // namespace by::worker
