// libesmtp needs <stddef.h> first, and <openssl/ssl.h> and <auth-client.h>
// before <libesmtp.h> to declare smtp_starttls_set_ctx and
// smtp_auth_set_context.
#include <stddef.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <auth-client.h>
#include <libesmtp.h>

#include "master/smtp.hpp"

#include <cstdarg>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "common/raii.hpp"

namespace by::master {

namespace {

using SessionPtr = std::unique_ptr<smtp_session, FreeWith<smtp_destroy_session>>;
using AuthPtr = std::unique_ptr<auth_context, FreeWith<auth_destroy_context>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, FreeWith<SSL_CTX_free>>;

// What the session tells us on the side, to explain a failure.
struct Diagnostics {
    std::string host;
    std::string last_reply;      // the last line the server sent
    std::string auth_refusal;    // the server's answer to a failed AUTH
    std::string tls_problem;
    bool starttls_missing = false;
    const SmtpSettings* settings = nullptr;
};

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

// Opportunistic TLS (starttls = if-available, no tls_ca_file): encrypt
// when offered, but do not insist on the server's identity, as whoever can
// tamper with the certificate can as well strip STARTTLS from the session.
// A local relay with a self-signed certificate then works out of the box.
bool opportunistic(const SmtpSettings& s) {
    return s.starttls == config::StartTls::if_available && s.tls_ca_file.empty();
}

void on_event(smtp_session_t, int event, void* arg, ...) {
    auto* d = static_cast<Diagnostics*>(arg);
    const bool accept_any = opportunistic(*d->settings);
    va_list ap;
    va_start(ap, arg);
    switch (event) {
    case SMTP_EV_EXTNA_STARTTLS:
        d->starttls_missing = true;
        break;
    case SMTP_EV_INVALID_PEER_CERTIFICATE: {
        const long result = va_arg(ap, long);
        *va_arg(ap, int*) = accept_any;
        if (!accept_any) {
            d->tls_problem = fmt::format("the server's certificate is not trusted: {}{}",
                                         X509_verify_cert_error_string(result),
                                         d->settings->tls_ca_file.empty()
                                             ? " (set tls_ca_file in [mail] for a private CA)"
                                             : " (checked against " + d->settings->tls_ca_file + ")");
        }
        break;
    }
    case SMTP_EV_WRONG_PEER_CERTIFICATE: {
        *va_arg(ap, int*) = accept_any;
        const char* name = va_arg(ap, const char*);
        d->tls_problem = accept_any ? "" : fmt::format("the server's certificate is for '{}', not for '{}'",
                                                       name ? name : "", d->host);
        break;
    }
    case SMTP_EV_NO_PEER_CERTIFICATE:
        *va_arg(ap, int*) = accept_any;
        d->tls_problem = accept_any ? "" : "the server sent no certificate";
        break;
    case SMTP_EV_WEAK_CIPHER:
        d->tls_problem = fmt::format("the TLS cipher is too weak ({} bits)", va_arg(ap, int));
        break;
    default:
        break;
    }
    va_end(ap);
}

void on_monitor(const char* buf, int len, int writing, void* arg) {
    if (writing != SMTP_CB_READING || len <= 0) {
        return;
    }
    std::string text = trim(std::string(buf, static_cast<size_t>(len)));
    if (auto nl = text.rfind('\n'); nl != std::string::npos) {
        text = text.substr(nl + 1);
    }
    if (!text.empty()) {
        auto* d = static_cast<Diagnostics*>(arg);
        d->last_reply = trim(text);
        // 535: bad credentials; 534 and 538: mechanism too weak or needs TLS.
        if (text.starts_with("535") || text.starts_with("534") || text.starts_with("538")) {
            d->auth_refusal = d->last_reply;
        }
    }
}

struct Credentials {
    std::string user;
    std::string password;
};

int on_auth(auth_client_request_t request, char** result, int fields, void* arg) {
    auto* c = static_cast<Credentials*>(arg);
    for (int i = 0; i < fields; ++i) {
        if (request[i].flags & AUTH_USER) {
            result[i] = c->user.data();
        } else if (request[i].flags & AUTH_PASS) {
            result[i] = c->password.data();
        } else {
            result[i] = const_cast<char*>("");
        }
    }
    return 1;
}

std::string status_text(const smtp_status_t* s) {
    if (!s || s->code == 0) {
        return {};
    }
    return trim(fmt::format("{} {}", s->code, s->text ? s->text : ""));
}

bool positive(const smtp_status_t* s) { return s && s->code >= 200 && s->code < 300; }

std::string library_error() {
    const int e = smtp_errno();
    if (e == 0) {
        return {};
    }
    char buf[256] = "";
    const char* text = smtp_strerror(e, buf, sizeof buf);
    return text ? text : "error " + std::to_string(e);
}

}  // namespace

SmtpOutcome smtp_send(const SmtpSettings& settings, const std::string& from, const std::vector<std::string>& to,
                      const std::string& text) {
    static std::once_flag auth_once;
    std::call_once(auth_once, [] { auth_client_init(); });

    SmtpOutcome out;
    Diagnostics diag;
    diag.host = settings.relayhost;
    diag.settings = &settings;
    Credentials creds{settings.username, settings.password};
    const std::string server = fmt::format("{}:{}", settings.relayhost, settings.port);

    // OpenSSL keeps per-thread state (the random generators a TLS context
    // seeds from) that it frees when the thread ends; the mail thread may
    // still be ending when the master exits, and the sanitizer lane then
    // saw it as leaked. Freed here instead, after everything below.
    struct ThreadStop {
        ~ThreadStop() { OPENSSL_thread_stop(); }
    } thread_stop;
    // Destroyed in reverse order: the session before the contexts it uses.
    AuthPtr auth;
    SslCtxPtr tls;
    SessionPtr session(smtp_create_session());
    if (!session) {
        out.error = "cannot create an SMTP session: " + library_error();
        return out;
    }
    smtp_message_t message = smtp_add_message(session.get());
    if (!message || !smtp_set_server(session.get(), server.c_str()) ||
        !smtp_set_reverse_path(message, from.c_str()) ||
        !smtp_set_messagecb(message, _smtp_message_str_cb, const_cast<char*>(text.c_str()))) {
        out.error = "cannot set up the SMTP session: " + library_error();
        return out;
    }
    std::vector<std::pair<std::string, smtp_recipient_t>> recipients;
    for (const auto& address : to) {
        smtp_recipient_t r = smtp_add_recipient(message, address.c_str());
        if (!r) {
            out.error = "cannot add recipient " + address + ": " + library_error();
            return out;
        }
        recipients.emplace_back(address, r);
    }
    smtp_set_eventcb(session.get(), on_event, &diag);
    smtp_set_monitorcb(session.get(), on_monitor, &diag, 0);
    // The RFC's minimum timeouts are minutes long; a mail thread stuck that
    // long only delays other mail, but one minute is plenty for a relay.
    for (int which : {Timeout_GREETING, Timeout_ENVELOPE, Timeout_DATA, Timeout_TRANSFER, Timeout_DATA2}) {
        smtp_set_timeout(session.get(), which | Timeout_OVERRIDE_RFC2822_MINIMUM, 60000);
    }

    switch (settings.starttls) {
    case config::StartTls::no:
        smtp_starttls_enable(session.get(), Starttls_DISABLED);
        break;
    case config::StartTls::if_available:
    case config::StartTls::required:
        // Always our own SSL_CTX: libesmtp's built-in one is shared between
        // sessions yet freed with the first, and reads ~/.authenticate.
        tls.reset(SSL_CTX_new(TLS_client_method()));
        if (!tls) {
            out.error = "cannot create a TLS context";
            return out;
        }
        // TLS 1.2 only: libesmtp 1.1 takes the session tickets a TLS 1.3
        // server sends after the handshake for the reply to EHLO, which it
        // has not sent yet, and waits for it until its timeout.
        SSL_CTX_set_min_proto_version(tls.get(), TLS1_2_VERSION);
        SSL_CTX_set_max_proto_version(tls.get(), TLS1_2_VERSION);
        if (!settings.tls_ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(tls.get(), settings.tls_ca_file.c_str(), nullptr) != 1) {
                out.error = "cannot load the certificates in " + settings.tls_ca_file;
                return out;
            }
        } else {
            SSL_CTX_set_default_verify_paths(tls.get());
        }
        smtp_starttls_set_ctx(session.get(), tls.get());
        smtp_starttls_enable(session.get(), settings.starttls == config::StartTls::required ? Starttls_REQUIRED
                                                                                            : Starttls_ENABLED);
        break;
    }

    if (!settings.username.empty()) {
        auth.reset(auth_create_context());
        if (!auth) {
            out.error = "cannot create an SMTP AUTH context";
            return out;
        }
        auth_set_mechanism_flags(auth.get(), AUTH_PLUGIN_PLAIN, 0);
        auth_set_interact_cb(auth.get(), on_auth, &creds);
        smtp_auth_set_context(session.get(), auth.get());
    }

    if (!smtp_start_session(session.get())) {
        out.reply = diag.last_reply;
        out.error = fmt::format("cannot deliver through {}: {}", server,
                                diag.tls_problem.empty() ? library_error() : diag.tls_problem);
        return out;
    }

    // smtp_start_session succeeds even when the server refused the sender,
    // every recipient or the data: each has a status of its own.
    const smtp_status_t* sender = smtp_reverse_path_status(message);
    const smtp_status_t* transfer = smtp_message_transfer_status(message);
    if (!positive(sender)) {
        if (diag.starttls_missing) {
            out.error = fmt::format("{} does not offer STARTTLS, and [mail] starttls = required", server);
        } else if (!diag.tls_problem.empty()) {
            out.error = fmt::format("STARTTLS with {} failed: {}", server, diag.tls_problem);
        } else if (status_text(sender).empty()) {
            const std::string why = library_error();
            out.error = fmt::format("the session with {} ended before the mail was sent{}", server,
                                    why.empty() ? "" : ": " + why);
        } else if (!diag.auth_refusal.empty()) {
            out.error = fmt::format("{} refused AUTH as {} ({}), then the sender {}", server, settings.username,
                                    diag.auth_refusal, from);
        } else {
            out.error = fmt::format("{} refused the sender {}", server, from);
        }
        out.reply = status_text(sender).empty() ? diag.last_reply : status_text(sender);
        return out;
    }
    std::vector<std::string> refused;
    std::string first_refusal;
    for (const auto& [address, r] : recipients) {
        if (positive(smtp_recipient_status(r))) {
            out.accepted.push_back(address);
        } else {
            refused.push_back(address);
            if (first_refusal.empty()) {
                first_refusal = status_text(smtp_recipient_status(r));
            }
        }
    }
    if (!positive(transfer)) {
        out.accepted.clear();
        out.reply = status_text(transfer).empty() ? (first_refusal.empty() ? diag.last_reply : first_refusal)
                                                  : status_text(transfer);
        out.error = refused.size() == recipients.size()
                        ? fmt::format("{} refused every recipient", server)
                        : fmt::format("{} did not take the message", server);
        return out;
    }
    out.reply = status_text(transfer);
    if (!refused.empty()) {
        std::string list;
        for (const auto& a : refused) {
            list += (list.empty() ? "" : ", ") + a;
        }
        out.error = fmt::format("{} refused the recipients {}: {}", server, list, first_refusal);
        return out;
    }
    out.delivered = true;
    return out;
}

}  // namespace by::master
