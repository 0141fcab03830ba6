// TLS 1.3 under the remote workers' D-Bus connections, shared by the master
// and the worker (OpenSSL's libssl, loaded when TLS is first needed: see
// tls_api.hpp; if it cannot be, the functions below fail and say so).
// sd-bus cannot speak through an SSL object, so a Tunnel stands between
// them: sd-bus gets one end of a socketpair, and the tunnel moves bytes
// between the other end and the TCP socket, encrypting and decrypting on
// the way. Each tunnel is driven by its two descriptors in the caller's
// Reactor (reactor.hpp), edge-triggered; nothing it does depends on how
// many other tunnels exist.
// With no TLS context (`tls = no`) the same tunnel copies bytes unchanged,
// so that the limits below hold either way. See buildyard-protocol(7).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <systemd/sd-event.h>

#include "common/dbus_stream.hpp"
#include "common/raii.hpp"
#include "common/reactor.hpp"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct x509_st X509;

namespace by::tls {

struct CtxFree {
    void operator()(SSL_CTX* p) const noexcept;
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;
// A context shared by the tunnels made from it (OpenSSL counts references:
// a tunnel keeps the context it started with after a reload replaces it).
using SharedCtx = std::shared_ptr<SSL_CTX>;

// "sha256:" and the lowercase hex SHA-256 of the certificate's DER form.
std::string fingerprint(X509* cert);

// The master's side: its certificate and key (PEM), optionally asking every
// peer for a client certificate (checked per worker after the handshake,
// see client_certificate_ok). TLS 1.3 only.
struct ServerIdentity {
    SharedCtx ctx;
    std::string fingerprint;  // of the certificate
};
bool load_server_identity(const std::string& cert_file, const std::string& key_file, ServerIdentity& out,
                          std::string& error);

// With no certificate configured: `dir`/tls-certificate.pem and
// tls-key.pem, made on first use (a P-256 key and a self-signed certificate
// for `common_name`, valid 100 years; both files mode 0600) and reused.
// `created` tells which happened.
bool ensure_self_signed(const std::string& dir, const std::string& common_name, std::string& cert_file,
                        std::string& key_file, bool& created, std::string& error);

// The worker's side. Exactly one of `pin` (a fingerprint as
// fingerprint() prints it) and `ca_file` is set; `certificate`/`key`
// optionally make a client certificate (mutual TLS). TLS 1.3 only.
struct ClientTrust {
    std::string pin;
    std::string ca_file;
    std::string certificate;
    std::string key;
};
bool make_client_context(const ClientTrust& trust, SharedCtx& out, std::string& error);

// Whether the peer certificate of `ssl` is acceptable to a worker section:
// its fingerprint is `pin` (when set) and it chains to `ca_file` (when set).
// `why` says what is wrong.
bool client_certificate_ok(SSL* ssl, const std::string& pin, const std::string& ca_file, std::string& why);

// One connection's pump between a TCP socket and sd-bus.
class Tunnel {
public:
    // Plaintext the peer may make us hold before limit_inbound(0) lifts the
    // cap (the master sets it until the worker has authenticated).
    static constexpr size_t default_preauth_limit = 64 * 1024;

    struct Events {
        // The TLS handshake is done (at once for plain TCP). For a client,
        // this is where the caller checks the master's certificate.
        std::function<void()> established;
        // The tunnel failed or the peer closed the connection; `why` says
        // which. sd-bus sees its end close right after.
        std::function<void(const std::string& why)> failed;
    };

    // `ctx` null: plain TCP. `server`: accept, else connect (`host` for
    // SNI and, with a CA, the name check). Takes `tcp` (non-blocking,
    // possibly still connecting). On success `bus_fd` is the end for
    // sd_bus_set_fd, which the caller then owns.
    static std::unique_ptr<Tunnel> create(Reactor& reactor, Fd tcp, const SharedCtx& ctx, bool server,
                                          const std::string& host, Events events, Fd& bus_fd, std::string& error);
    ~Tunnel();
    Tunnel(const Tunnel&) = delete;
    Tunnel& operator=(const Tunnel&) = delete;

    bool encrypted() const { return ssl_ != nullptr; }
    bool established() const { return established_; }
    // RFC 9266 tls-exporter: 32 bytes of exported keying material with the
    // label "EXPORTER-Channel-Binding" and no context. Empty for plain TCP
    // or before the handshake is done.
    std::vector<uint8_t> channel_binding() const;
    // The certificate the peer presented, or nullptr.
    X509* peer_certificate() const;
    SSL* ssl() const { return ssl_; }
    // No more events: from now on a failure only closes the tunnel (sd-bus
    // sees its end close). For a caller that is about to drop it.
    void quiet() { events_ = {}; }
    // Moves what sd-bus has written so far on to the peer, as far as the
    // socket takes it without waiting: for an owner about to free the
    // tunnel right after its last reply (the master's answer to Detach).
    void flush();
    // Caps the plaintext received and not yet authenticated; 0: no cap.
    // Past the cap the tunnel fails, and so it does as soon as a D-Bus
    // message's header declares more than the cap leaves (dbus_stream.hpp).
    // Set before the first byte arrives; lifted once, not set again.
    void limit_inbound(size_t bytes) { inbound_limit_ = bytes; }
    uint64_t inbound_total() const { return inbound_total_; }

private:
    Tunnel() = default;
    enum class Side { net, bus };
    // An event on one of the two descriptors (0: no particular one): moves
    // the bytes it concerns, both ways after the handshake.
    void pump(Side side, uint32_t events);
    bool handshake();
    bool net_to_bus();
    bool bus_to_net();
    void fail(const std::string& why);
    // Ends the tunnel without an event: sd-bus sees its end close.
    void close_quietly();
    // Reads/writes on the TCP socket, through TLS or not. >0 bytes, 0 for
    // "try later" (the socket said EAGAIN: its next edge calls pump()),
    // <0 for the end.
    long net_read(char* buf, size_t n);
    long net_write(const char* buf, size_t n);
    std::string ssl_error(int ret);

    Fd net_;
    Fd bus_;
    SharedCtx ctx_;
    SSL* ssl_ = nullptr;
    Reactor::Watch net_watch_;
    Reactor::Watch bus_watch_;
    Events events_;
    bool server_ = false;
    bool established_ = false;
    bool done_ = false;
    bool net_eof_ = false;
    bool read_wants_write_ = false;  // SSL_read waits for the socket to take a write
    size_t inbound_limit_ = 0;
    uint64_t inbound_total_ = 0;
    DbusStream preauth_;  // the stream under inbound_limit_
    std::string last_error_;
    std::string to_bus_;           // decrypted, waiting for the bus end
    size_t to_bus_off_ = 0;
    std::string to_net_;           // from the bus, waiting for TLS/the socket
    size_t to_net_off_ = 0;
};

}  // namespace by::tls
