// The master's TLS identity for remote workers (remote.hpp).
#include "common/log.hpp"
#include "master/remote.hpp"

namespace by::master {

bool Remote::load_identity(const config::Master& cfg, std::string& error) {
    if (!cfg.tls) {
        log::warning("tls = no: remote workers connect over plain TCP, and anyone on the network path can read "
                     "their builds and inject commands");
        tls_.reset();
        tls_source_.clear();
        set_fingerprint("");
        return true;
    }
    std::string cert = cfg.tls_certificate;
    std::string key = cfg.tls_key;
    std::string source = cert;
    if (cert.empty()) {
        bool created = false;
        if (!tls::ensure_self_signed(state_directory_, cfg.name, cert, key, created, error)) {
            return false;
        }
        source = created ? "generated " + cert : cert + " (generated earlier)";
    }
    tls::ServerIdentity id;
    if (!tls::load_server_identity(cert, key, id, error)) {
        return false;
    }
    if (!tls_ || source != tls_source_ || id.fingerprint != tls_fingerprint_) {
        log::write(log::Level::notice,
                   fmt::format("TLS certificate for remote workers: {} from {}", id.fingerprint, source),
                   {{"BUILDYARD_TLS_FINGERPRINT", id.fingerprint}});
    }
    tls_ = std::move(id.ctx);
    tls_source_ = std::move(source);
    set_fingerprint(id.fingerprint);
    return true;
}

void Remote::set_fingerprint(const std::string& fingerprint) {
    tls_fingerprint_ = fingerprint;
    host_.set_tls_fingerprint(fingerprint);
}

void Remote::reload_identity(const config::Master& cfg) {
    tls::SharedCtx old = tls_;
    std::string error;
    if (!load_identity(cfg, error)) {
        log::error("{}; new connections keep the TLS identity {}", error,
                   tls_fingerprint_.empty() ? std::string("they had (none: plain TCP)") : tls_fingerprint_);
        tls_ = std::move(old);
    }
}

}  // namespace by::master
