#include "common/config_sections.hpp"

#include <algorithm>
#include <cerrno>
#include <set>

#include <arpa/inet.h>
#include <unistd.h>

#include "common/config_backends.hpp"
#include "common/config_values.hpp"

namespace by::config::detail {

namespace {

constexpr uint64_t max_builds_limit = 100000;

std::string in_quotes(std::string_view text) {
    return "'" + std::string(text) + "'";
}

const std::string name_rule = "use 1-64 characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'";

class Interpreter {
public:
    Interpreter(const Sections& sections, const Environment& env, Config& config, std::vector<Error>& errors)
        : sections_(sections), env_(env), config_(config), errors_(errors) {}

    void run() {
        master();
        master_credentials();
        mail();
        for (const auto& [name, section] : sections_.workers) {
            worker(section);
        }
        for (const auto& [name, section] : sections_.builders) {
            builder(section);
        }
        mail_builders();
    }

private:
    // An error about the value of `key`, at the line that set it.
    void bad(const Section& s, const std::string& key, std::string message) {
        const Origin& at = s.values.at(key).origin;
        errors_.push_back({at.file, at.line, s.label, key, std::move(message)});
    }

    // An error about the section as a whole, at its (first) header.
    void bad_section(const Section& s, std::string message) {
        errors_.push_back({s.origin.file, s.origin.line, s.label, "", std::move(message)});
    }

    // Not an error: the setting loads, but probably does not work.
    void warn_section(const Section& s, const std::string& key, std::string message) {
        config_.warnings.push_back({s.origin.file, s.origin.line, s.label, key, std::move(message)});
    }

    void unknown(const Section& s, const std::string& key) {
        bad(s, key, "unknown key");
    }

    // A comma list whose entries must pass `valid`; reports empty and
    // invalid entries and returns the valid ones.
    template <class Valid>
    std::vector<std::string> list(const Section& s, const std::string& key, Valid valid, const std::string& what) {
        std::vector<std::string> out;
        for (auto& entry : split_list(s.values.at(key).text)) {
            if (entry.empty()) {
                bad(s, key, "empty entry in list");
            } else if (!valid(entry)) {
                bad(s, key, "invalid " + what + " " + in_quotes(entry));
            } else {
                out.push_back(std::move(entry));
            }
        }
        return out;
    }

    std::vector<std::string> addresses(const Section& s, const std::string& key) {
        return list(s, key, [](const std::string& a) { return valid_address(a); }, "address");
    }

    // The keys of `s` that are set, in the order they were read.
    static std::vector<std::string> present(const Section& s, std::initializer_list<const char*> keys) {
        std::vector<std::string> out;
        for (const char* key : keys) {
            if (s.get(key)) {
                out.push_back(key);
            }
        }
        std::sort(out.begin(), out.end(), [&](const std::string& a, const std::string& b) {
            return s.values.at(a).sequence < s.values.at(b).sequence;
        });
        return out;
    }

    // Steps see property NAME as $BUILDYARD_PROP_NAME with every character
    // but A-Z a-z 0-9 _ made '_', so a.b and a_b would be one variable, and
    // workername is the master's; secret.KEY would be a secret property,
    // which is hidden from the bus while its value sat in the worker's
    // Properties. Returns why `name` cannot be used.
    static std::optional<std::string> property_clash(const Section& s, const std::string& key,
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

    std::optional<uint64_t> seconds(const Section& s, const std::string& key, uint64_t min, const std::string& hint) {
        const auto& text = s.values.at(key).text;
        const auto value = parse_uint(text, max_seconds);
        if (!value || *value < min) {
            bad(s, key, "invalid value " + in_quotes(text) + ": expected " + hint);
            return std::nullopt;
        }
        return value;
    }

    void master() {
        config_.master.name = env_.hostname;
        if (!sections_.master) {
            return;
        }
        config_.master.declared = true;
        const Section& s = *sections_.master;
        for (const auto& [key, v] : s.values) {
            if (key == "name") {
                if (valid_worker_name(v.text)) {
                    config_.master.name = v.text;
                } else {
                    bad(s, key, "invalid name " + in_quotes(v.text) + ": " + name_rule);
                }
            } else if (key == "listen") {
                if (v.text.empty() || parse_host_port(v.text)) {
                    config_.master.listen = v.text;
                } else {
                    bad(s, key, "invalid address " + in_quotes(v.text) +
                                    ": expected HOST:PORT with a port from 1 to 65535 (an IPv6 address as "
                                    "[::1]:9989), or nothing for no TCP listener");
                }
            } else if (key == "metrics") {
                // The HTTP server (civetweb) binds addresses, not host names.
                const auto hp = parse_host_port(v.text);
                in_addr a4{};
                if (v.text.empty() || (hp && (v.text[0] == '[' || inet_pton(AF_INET, hp->host.c_str(), &a4) == 1))) {
                    config_.master.metrics = v.text;
                } else {
                    bad(s, key, "invalid address " + in_quotes(v.text) +
                                    ": expected IP:PORT with a port from 1 to 65535 (an IPv6 address as "
                                    "[::1]:9990), or nothing for no metrics");
                }
            } else if (key == "trusted_uids") {
                for (const auto& entry : split_list(v.text)) {
                    std::string error;
                    if (entry.empty()) {
                        bad(s, key, "empty entry in list");
                    } else if (const auto uid = resolve_uid(entry, error)) {
                        config_.master.trusted_uids.push_back(*uid);
                    } else {
                        bad(s, key, error);
                    }
                }
            } else if (key == "tls") {
                if (const auto yes = parse_yes_no(v.text)) {
                    config_.master.tls = *yes;
                } else {
                    bad(s, key, "invalid value " + in_quotes(v.text) + ": expected yes or no");
                }
            } else if (key == "tls_certificate" || key == "tls_key") {
                std::string error;
                if (readable_path(v.text, error)) {
                    (key == "tls_key" ? config_.master.tls_key : config_.master.tls_certificate) = v.text;
                } else {
                    bad(s, key, error);
                }
            } else {
                unknown(s, key);
            }
        }
        const bool cert = s.get("tls_certificate");
        if (cert != static_cast<bool>(s.get("tls_key"))) {
            bad(s, cert ? "tls_certificate" : "tls_key", "set both tls_certificate and tls_key, or neither");
        }
    }

    // Without [master] tls_certificate and tls_key: the systemd credentials
    // tls-certificate and tls-key, when both exist.
    void master_credentials() {
        Master& m = config_.master;
        if (!m.tls_certificate.empty() || !m.tls_key.empty() || env_.credentials_directory.empty()) {
            return;
        }
        const std::string cert = env_.credentials_directory + "/tls-certificate";
        const std::string key = env_.credentials_directory + "/tls-key";
        if (access(cert.c_str(), R_OK) == 0 && access(key.c_str(), R_OK) == 0) {
            m.tls_certificate = cert;
            m.tls_key = key;
        }
    }

    void mail() {
        Mail& m = config_.mail;
        m.fromaddr = "buildyard@" + env_.hostname;
        if (!sections_.mail) {
            return;
        }
        const Section& s = *sections_.mail;
        m.configured = true;
        const auto secret_keys = present(s, {"password_file", "password_credential"});
        for (const auto& [key, v] : s.values) {
            if (key == "fromaddr") {
                if (valid_address(v.text)) {
                    m.fromaddr = v.text;
                } else {
                    bad(s, key, "invalid address " + in_quotes(v.text));
                }
            } else if (key == "relayhost") {
                if (valid_host_name(v.text)) {
                    m.relayhost = v.text;
                } else {
                    bad(s, key, "invalid host name " + in_quotes(v.text));
                }
            } else if (key == "port") {
                const auto port = parse_uint(v.text, 65535);
                if (port && *port > 0) {
                    m.port = static_cast<unsigned>(*port);
                } else {
                    bad(s, key, "invalid port " + in_quotes(v.text) + ": expected a number from 1 to 65535");
                }
            } else if (key == "starttls") {
                if (v.text == "no") {
                    m.starttls = StartTls::no;
                } else if (v.text == "if-available") {
                    m.starttls = StartTls::if_available;
                } else if (v.text == "required") {
                    m.starttls = StartTls::required;
                } else {
                    bad(s, key, "invalid value " + in_quotes(v.text) + ": expected no, if-available or required");
                }
            } else if (key == "username") {
                m.username = v.text;
            } else if (key == "password_file" || key == "password_credential") {
                // read after the loop, once username is known
            } else if (key == "builders") {
                m.builders_set = true;
                m.builders = list(s, key, [](const std::string&) { return true; }, "builder");
            } else if (key == "recipients") {
                m.recipients = addresses(s, key);
            } else if (key == "tls_ca_file") {
                if (v.text.empty() || v.text[0] != '/') {
                    bad(s, key, "invalid path " + in_quotes(v.text) + ": expected an absolute path");
                } else if (access(v.text.c_str(), R_OK) != 0) {
                    bad(s, key, "cannot read " + v.text + ": " + errno_message(errno));
                } else {
                    m.tls_ca_file = v.text;
                }
            } else if (key == "password") {
                bad(s, key, "unknown key (use password_file or password_credential)");
            } else {
                unknown(s, key);
            }
        }
        if (secret_keys.empty() && s.get("username")) {
            bad(s, "username", "does nothing without a password: set password_file or password_credential too, "
                               "or drop username to send without authentication");
        }
        if (secret_keys.size() > 1) {
            bad(s, secret_keys[1], "set only one of password_file and password_credential");
        } else if (secret_keys.size() == 1) {
            const auto& key = secret_keys[0];
            std::string error;
            if (!env_.read_secrets) {
                // checked for presence only
            } else if (auto secret = resolve_password(key, s.values.at(key).text, env_.credentials_directory, error)) {
                m.password = std::move(*secret);
            } else {
                bad(s, key, error);
            }
            if (m.username.empty()) {
                bad(s, key, "a mail password needs username");
            }
        }
    }

    void mail_builders() {
        if (!sections_.mail) {
            return;
        }
        if (!sections_.mail->get("builders")) {
            if (sections_.mail->get("recipients")) {
                bad(*sections_.mail, "recipients",
                    "does nothing without builders: recipients get the results of the builders listed in "
                    "[mail] builders");
            }
            return;
        }
        const Section& s = *sections_.mail;
        for (const auto& name : config_.mail.builders) {
            if (!sections_.builders.contains(name)) {
                bad(s, "builders", "unknown builder " + in_quotes(name));
            }
        }
        if (!config_.mail.builders.empty() && config_.mail.recipients.empty()) {
            bad(s, "builders", "results are mailed to recipients, but no recipients are set");
        }
    }

    void worker(const Section& s) {
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
                bad(s, "backend", "unknown backend " + in_quotes(backend->text) + ": expected libvirt, docker or ec2");
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
            bad_section(s, "latent workers need backend = NAME (libvirt, docker or ec2)");
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

    void worker_password(const Section& s, Worker& w, const std::vector<std::string>& keys) {
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

    void builder(const Section& s) {
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

    const Sections& sections_;
    const Environment& env_;
    Config& config_;
    std::vector<Error>& errors_;
};

}  // namespace

void interpret(const Sections& sections, const Environment& env, Config& config, std::vector<Error>& errors) {
    Interpreter(sections, env, config, errors).run();
}

}  // namespace by::config::detail
