// [master], [mail] and [latentd], and the order in which all sections are
// read. What the keys of [worker NAME] and [builder NAME] mean is in
// config_worker_sections.cpp.
#include "common/config_sections.hpp"

#include <cerrno>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <unistd.h>

#include "common/config_interpreter.hpp"
#include "common/database_uri.hpp"

namespace by::config::detail {

namespace {

// The timeouts of a remote connection's login.
constexpr UsecKnob up_to_an_hour{.max_usec = 3600'000'000};
constexpr UsecKnob up_to_a_day{.max_usec = 86400'000'000};

const std::string name_rule = "use 1-64 characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'";

}  // namespace

void Interpreter::run() {
    master();
    master_credentials();
    mail();
    latentd();
    for (const auto& [name, section] : sections_.workers) {
        worker(section);
    }
    for (const auto& [name, section] : sections_.builders) {
        builder(section);
    }
    mail_builders();
}

void Interpreter::master() {
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
        } else if (key == "auth_timeout") {
            duration(s, key, config_.master.auth_timeout_usec, up_to_an_hour);
        } else if (key == "duplicate_ping_timeout") {
            duration(s, key, config_.master.duplicate_ping_timeout_usec, up_to_an_hour);
        } else if (key == "latent_lease") {
            duration(s, key, config_.master.latent_lease_usec);
        } else if (key == "database") {
            if (const auto problem = database_uri_problem(v.text)) {
                bad(s, key, *problem);
            } else {
                config_.master.database = v.text == "sqlite" ? "" : v.text;
            }
        } else if (key == "cluster_heartbeat") {
            duration(s, key, config_.master.cluster_heartbeat_usec, up_to_an_hour);
        } else if (key == "cluster_timeout") {
            duration(s, key, config_.master.cluster_timeout_usec, up_to_a_day);
        } else if (key == "database_password") {
            std::string error;
            if (auto secret = resolve_secret(v.text, env_.credentials_directory, env_.read_secrets, error)) {
                config_.master.database_password = std::move(*secret);
            } else {
                bad(s, key, error);
            }
        } else {
            unknown(s, key);
        }
    }
    if (s.get("database_password") && config_.master.database.empty()) {
        bad(s, "database_password", "does nothing without database = postgresql://...");
    }
    // A master is dead to the others once its heartbeat is older than the
    // timeout: one late heartbeat must not be enough.
    const Master& m = config_.master;
    if (m.cluster_timeout_usec <= 2 * m.cluster_heartbeat_usec) {
        bad(s, s.get("cluster_timeout") ? "cluster_timeout" : "cluster_heartbeat",
            fmt::format("cluster_timeout ({:g} s) must be more than twice cluster_heartbeat ({:g} s)",
                        static_cast<double>(m.cluster_timeout_usec) / 1e6,
                        static_cast<double>(m.cluster_heartbeat_usec) / 1e6));
    }
    const bool cert = s.get("tls_certificate");
    if (cert != static_cast<bool>(s.get("tls_key"))) {
        bad(s, cert ? "tls_certificate" : "tls_key", "set both tls_certificate and tls_key, or neither");
    }
}

// Without [master] tls_certificate and tls_key: the systemd credentials
// tls-certificate and tls-key, when both exist.
void Interpreter::master_credentials() {
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

void Interpreter::mail() {
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
        } else if (key == "retry_interval") {
            duration(s, key, m.retry_interval_usec);
        } else if (key == "give_up_after") {
            duration(s, key, m.give_up_after_usec);
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

void Interpreter::latentd() {
    if (!sections_.latentd) {
        return;
    }
    const Section& s = *sections_.latentd;
    Latentd& l = config_.latentd;
    const std::map<std::string, uint64_t*> durations = {
        {"create_timeout", &l.create_timeout_usec},   {"destroy_timeout", &l.destroy_timeout_usec},
        {"health_interval", &l.health_interval_usec}, {"reap_interval", &l.reap_interval_usec},
        {"lease_check_interval", &l.lease_check_interval_usec},
    };
    for (const auto& [key, v] : s.values) {
        if (const auto it = durations.find(key); it != durations.end()) {
            duration(s, key, *it->second);
        } else {
            unknown(s, key);
        }
    }
}

void Interpreter::mail_builders() {
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

void interpret(const Sections& sections, const Environment& env, Config& config, std::vector<Error>& errors) {
    Interpreter(sections, env, config, errors).run();
}

}  // namespace by::config::detail
