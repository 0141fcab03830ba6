// What the keys of [worker NAME] and [builder NAME] mean.
#include <map>
#include <set>

#include "common/config_backends.hpp"
#include "common/config_interpreter.hpp"

namespace by::config::detail {

namespace {

constexpr uint64_t max_builds_limit = 100000;

}  // namespace

// Steps see property NAME as $BUILDYARD_PROP_NAME with every character
// but A-Z a-z 0-9 _ made '_', so a.b and a_b would be one variable, and
// workername is the master's; secret.KEY would be a secret property,
// which is hidden from the bus while its value sat in the worker's
// Properties. Returns why `name` cannot be used.
std::optional<std::string> Interpreter::property_clash(const Section& s, const std::string& key,
                                                       const std::string& name,
                                                       std::map<std::string, std::string>& env_names) {
    if (name.starts_with("secret.")) {
        return "a property named secret.KEY is a secret, and a secret's value is never written in the config: "
               "use [builder NAME] secret.KEY = credential:NAME or file:PATH";
    }
    std::string env = "BUILDYARD_PROP_";
    for (char c : name) {
        const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        env.push_back(plain ? c : '_');
    }
    if (env == "BUILDYARD_PROP_workername") {
        return "the master sets property workername (the worker's name) on every build; choose another name";
    }
    auto [it, added] = env_names.emplace(env, key);
    if (!added) {
        const Origin& first = s.values.at(it->second).origin;
        return "steps would see it as $" + env + ", like " + it->second + " (" + first.file + ":" +
               std::to_string(first.line) + "): choose names that differ in more than . and -";
    }
    return std::nullopt;
}

void Interpreter::worker(const Section& s) {
    Worker w;
    w.name = s.name;
    w.origin = s.origin;
    bool type_ok = true;  // with a bad type, rules that depend on it would only mislead
    if (const Value* v = s.get("type")) {
        if (v->text == "standard") {
            w.type = WorkerType::standard;
        } else if (v->text == "local") {
            w.type = WorkerType::local;
        } else if (v->text == "latent") {
            w.type = WorkerType::latent;
        } else {
            bad(s, "type", "invalid type " + in_quotes(v->text) + ": expected standard, local or latent");
            type_ok = false;
        }
    }
    const bool latent = w.type == WorkerType::latent;
    const Value* backend = s.get("backend");
    const std::string backend_prefix = backend && !backend->text.empty() ? backend->text + "." : "";
    const auto password_keys = present(s, {"password", "password_file", "password_credential"});

    bool backend_ok = false;
    if (backend && latent) {
        if (known_backend(backend->text)) {
            w.backend = backend->text;
            w.build_wait_timeout = default_build_wait_timeout(w.backend);
            backend_ok = true;
        } else {
            bad(s, "backend", "unknown backend " + in_quotes(backend->text) + ": expected libvirt, docker, ec2 or openstack");
        }
    }
    std::map<std::string, std::string> backend_keys;  // without the prefix
    std::map<std::string, std::string> env_names;     // BUILDYARD_PROP_ name -> the key that took it
    std::map<std::string, std::string> default_env_names;  // the same for default_property.
    for (const auto& [key, v] : s.values) {
        const bool backend_key = !backend_prefix.empty() && key.starts_with(backend_prefix) &&
                                 key.size() > backend_prefix.size();
        const bool latent_only =
            key == "backend" || key == "build_wait_timeout" || key == "master_address" || backend_key;
        const auto dot = key.find('.');
        if (!type_ok && (latent_only || key == "keepalive_interval" || key == "keepalive_timeout" ||
                         key == "password" || key == "password_file" || key == "password_credential")) {
            continue;  // whether it belongs here depends on the type, which has the error
        } else if (latent_only && !latent) {
            bad(s, key, "only valid for latent workers (type = latent)");
        } else if ((key == "keepalive_interval" || key == "keepalive_timeout") && w.type == WorkerType::local) {
            bad(s, key, "does nothing for a local worker, which the system bus watches: keepalives are for "
                        "workers that attach over TCP (type = standard or latent)");
        } else if (key == "type" || key == "backend") {
            // read above: the other keys depend on them
        } else if (key == "master_address") {
            if (parse_host_port(v.text)) {
                w.master_address = v.text;
            } else {
                bad(s, key, "invalid address " + in_quotes(v.text) +
                                ": expected HOST:PORT that the instance can reach the master at");
            }
        } else if (backend_key) {
            if (!backend_ok) {
                continue;  // the backend line has the error
            }
            const std::string bare = key.substr(backend_prefix.size());
            if (auto problem = check_backend_key(w.backend, bare, v.text)) {
                bad(s, key, *problem);
            } else {
                w.backend_options[key] = v.text;
                backend_keys[bare] = v.text;
            }
        } else if (latent && dot != std::string::npos && dot > 0 && known_backend(key.substr(0, dot))) {
            bad(s, key, "belongs to backend " + key.substr(0, dot) + ", but this worker's backend is " +
                            (backend ? backend->text : std::string("not set")));
        } else if (key == "build_wait_timeout") {
            const auto max = static_cast<int64_t>(max_seconds);
            if (const auto value = parse_int(v.text, -max, max)) {
                w.build_wait_timeout = *value;
            } else {
                bad(s, key, "invalid value " + in_quotes(v.text) +
                                ": expected a number of seconds (0: stop at once, negative: never)");
            }
        } else if (latent_only) {
            w.backend_options[key] = v.text;
        } else if (key == "password" || key == "password_file" || key == "password_credential") {
            // see worker_password()
        } else if (key == "tls_client_ca") {
            std::string error;
            if (readable_path(v.text, error)) {
                w.tls_client_ca = v.text;
            } else {
                bad(s, key, error);
            }
        } else if (key == "tls_client_fingerprint") {
            if (auto fp = parse_fingerprint(v.text)) {
                w.tls_client_fingerprint = *fp;
            } else {
                bad(s, key, "invalid fingerprint " + in_quotes(v.text) + ": expected sha256: and 64 hex digits");
            }
        } else if (key == "max_builds") {
            if (const auto value = parse_uint(v.text, max_builds_limit)) {
                w.max_builds = static_cast<unsigned>(*value);
            } else {
                bad(s, key, "invalid value " + in_quotes(v.text) + ": expected a number from 0 to " +
                                std::to_string(max_builds_limit) + " (0: no limit)");
            }
        } else if (key == "keepalive_interval") {
            if (v.text == "none") {
                w.keepalive_interval = 0;
            } else if (parse_uint(v.text, max_seconds) == uint64_t{0}) {
                bad(s, key, "0 is not allowed: use 'none' to turn keepalives off");
            } else if (const auto value = seconds(s, key, 1, "a positive number of seconds or 'none'")) {
                w.keepalive_interval = *value;
            }
        } else if (key == "keepalive_timeout") {
            if (const auto value = seconds(s, key, 1, "a positive number of seconds")) {
                w.keepalive_timeout = *value;
            }
        } else if (key == "lost_build_grace") {
            if (const auto value = seconds(s, key, 0, "a number of seconds (0: rerun at once)")) {
                w.lost_build_grace = static_cast<int64_t>(*value);
            }
        } else if (key == "missing_timeout") {
            if (const auto value = seconds(s, key, 0, "a number of seconds (0: disabled)")) {
                w.missing_timeout = *value;
            }
        } else if (key == "notify_on_missing") {
            w.notify_on_missing = addresses(s, key);
        } else if (key.starts_with("property.")) {
            const auto name = key.substr(9);
            if (!valid_property_key(name)) {
                bad(s, key, "invalid property name " + in_quotes(name) + ": use A-Z a-z 0-9 _ . -");
            } else if (auto clash = property_clash(s, key, name, env_names)) {
                bad(s, key, *clash);
            } else {
                w.properties[name] = v.text;
            }
        } else if (key.starts_with("default_property.")) {
            const auto name = key.substr(17);
            if (!valid_property_key(name)) {
                bad(s, key, "invalid property name " + in_quotes(name) + ": use A-Z a-z 0-9 _ . -");
            } else if (auto clash = property_clash(s, key, name, default_env_names)) {
                bad(s, key, *clash);
            } else {
                w.default_properties[name] = v.text;
            }
        } else {
            unknown(s, key);
        }
    }

    if (latent && !backend) {
        bad_section(s, "latent workers need backend = NAME (libvirt, docker, ec2 or openstack)");
    }
    if (!type_ok) {
        config_.workers.emplace(w.name, std::move(w));
        return;
    }
    if (backend_ok) {
        for (const auto& [key, message] : check_backend_section(w.backend, backend_keys)) {
            if (!key.empty() && s.get(backend_prefix + key)) {
                bad(s, backend_prefix + key, message);
            } else {
                bad_section(s, key.empty() ? message : backend_prefix + key + ": " + message);
            }
        }
    }
    if (latent && w.master_address.empty()) {
        // The instance dials this host, at the port the master listens on.
        const auto listen = parse_host_port(config_.master.listen);
        if (!listen) {
            bad_section(s, "latent workers attach over TCP, but [master] listen is empty: set "
                           "master_address = HOST:PORT");
        } else {
            const bool ipv6 = env_.hostname.find(':') != std::string::npos;
            w.master_address = (ipv6 ? "[" + env_.hostname + "]" : env_.hostname) + ":" +
                               std::to_string(listen->port);
            if (auto problem = backend_ok ? default_master_address_problem(w.backend, backend_keys,
                                                                           config_.master.listen, w.master_address)
                                          : std::nullopt) {
                warn_section(s, "master_address", *problem);
            }
        }
    }
    worker_password(s, w, password_keys);
    config_.workers.emplace(w.name, std::move(w));
}

void Interpreter::worker_password(const Section& s, Worker& w, const std::vector<std::string>& keys) {
    if (w.type == WorkerType::latent) {
        for (const auto& key : keys) {
            bad(s, key, "latent workers take no password: each start of their machine gets a one-time token");
        }
        return;
    }
    if (w.type == WorkerType::local) {
        for (const auto& key : keys) {
            bad(s, key, "local workers take no password (the master knows them by their unit or uid)");
        }
        return;
    }
    if (keys.empty()) {
        bad_section(s, "standard workers need password, password_file or password_credential "
                       "(use type = local for a worker on this machine)");
        return;
    }
    for (std::size_t i = 1; i < keys.size(); ++i) {
        const Origin& first = s.values.at(keys[0]).origin;
        bad(s, keys[i], "conflicts with " + keys[0] + " (" + first.file + ":" + std::to_string(first.line) +
                            "): set only one of password, password_file and password_credential");
    }
    if (keys.size() == 1) {
        std::string error;
        if (!env_.read_secrets) {
            // checked for presence only
        } else if (auto secret = resolve_password(keys[0], s.values.at(keys[0]).text, env_.credentials_directory, error)) {
            w.password = std::move(*secret);
        } else {
            bad(s, keys[0], error);
        }
    }
}

void Interpreter::builder(const Section& s) {
    Builder b;
    b.name = s.name;
    b.origin = s.origin;
    std::map<uint64_t, std::string> steps;
    for (const auto& [key, v] : s.values) {
        if (key == "workers") {
            std::set<std::string> seen;
            for (const auto& name : split_list(v.text)) {
                if (name.empty()) {
                    bad(s, key, "empty entry in list");
                } else if (!sections_.workers.contains(name)) {
                    bad(s, key, "unknown worker " + in_quotes(name));
                } else if (!seen.insert(name).second) {
                    bad(s, key, "worker " + in_quotes(name) + " is listed twice");
                } else {
                    b.workers.push_back(name);
                }
            }
            if (trim(v.text).empty()) {
                bad(s, key, "needs at least one worker");
            }
        } else if (key.starts_with("step.")) {
            const auto number = key.substr(5);
            const auto n = parse_uint(number, 1000000000);
            if (!n || *n == 0 || number[0] == '0') {
                bad(s, key, "invalid step number " + in_quotes(number) +
                                ": use step.1, step.2, ... (a positive number without leading zeros)");
            } else if (v.text.empty()) {
                bad(s, key, "the step's command is empty");
            } else {
                steps[*n] = v.text;
            }
        } else if (is_limit_key(key)) {
            std::string error;
            if (!parse_limit(key, v.text, b.limits, error)) {
                bad(s, key, "invalid value " + in_quotes(v.text) + ": " + error);
            }
        } else if (key.starts_with("secret.")) {
            const auto name = key.substr(7);
            std::string error;
            if (!valid_property_key(name)) {
                bad(s, key, "invalid secret name " + in_quotes(name) + ": use A-Z a-z 0-9 _ . -");
            } else if (auto secret = resolve_secret(v.text, env_.credentials_directory, env_.read_secrets, error)) {
                b.secrets[name] = std::move(*secret);
            } else {
                bad(s, key, error);
            }
        } else {
            unknown(s, key);
        }
    }
    if (!s.get("workers")) {
        bad_section(s, "builder has no workers (add workers = NAME, ...)");
    }
    bool has_steps = false;
    for (const auto& [key, v] : s.values) {
        has_steps = has_steps || key.starts_with("step.");
    }
    if (!has_steps) {
        bad_section(s, "builder has no steps (add step.1 = COMMAND)");
    }
    for (auto& [n, command] : steps) {
        b.steps.push_back(std::move(command));
    }
    config_.builders.emplace(b.name, std::move(b));
}

}  // namespace by::config::detail
