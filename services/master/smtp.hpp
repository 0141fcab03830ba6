// One SMTP delivery through libesmtp. It blocks for as long as the server
// takes, so the master calls it only from its mail thread (mail_sender.*).
#pragma once

#include <string>
#include <vector>

#include "common/config.hpp"

namespace by::master {

struct SmtpSettings {
    std::string relayhost = "localhost";
    unsigned port = 25;
    config::StartTls starttls = config::StartTls::if_available;
    std::string username;        // empty: no AUTH
    std::string password;
    std::string tls_ca_file;     // empty: the system's trusted certificates
};

struct SmtpOutcome {
    // The server took the message for every recipient.
    bool delivered = false;
    // The recipients the server took the message for (all of them when
    // delivered; some when it refused others).
    std::vector<std::string> accepted;
    // The server's reply that decided the outcome, "250 2.0.0 Ok" or the
    // refusal; empty when no server answered.
    std::string reply;
    // What went wrong, for the log; empty when delivered.
    std::string error;
};

SmtpOutcome smtp_send(const SmtpSettings& settings, const std::string& from, const std::vector<std::string>& to,
                      const std::string& text);

}  // namespace by::master
