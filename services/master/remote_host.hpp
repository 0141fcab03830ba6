// What the listener for remote workers (Remote and its connections,
// remote*.cpp) asks of the master, and nothing more: the facts about a
// worker that the handshake and the keepalives need, the worker's link
// objects on a connection, and the attach, detach and calls to the worker
// that the master does for it. Master implements it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <systemd/sd-bus.h>

#include "common/config.hpp"
#include "common/raii.hpp"
#include "master/metrics.hpp"
#include "master/status.hpp"

namespace by::master {

// A worker as a remote connection needs to see it. The pointers and the
// view live until the master next changes (the end of the bus dispatch or
// timer callback that asked).
struct RemoteWorker {
    const config::Worker* cfg = nullptr;  // its section (never null)
    bool configured = false;              // false: removed by a reload, waiting for its builds
    bool attached = false;
    std::string_view link;                // attached: its link ("tcp#N", or a unique name on the system bus)
    // The secret it proves at the handshake: its password, or for a latent
    // worker the token of its current start (nullptr: none now).
    const std::string* key = nullptr;
};

class RemoteHost {
public:
    // The worker named `name`; nullopt: there is none.
    virtual std::optional<RemoteWorker> remote_worker(const std::string& name) = 0;
    // Tokens of a latent worker's earlier starts, to tell a stale one in the log.
    virtual std::vector<std::string> earlier_tokens(const std::string& name) const = 0;

    // Serves WorkerLink1 on a connection's bus, as on the system bus.
    virtual int serve_link_object(sd_bus* link, std::vector<SlotPtr>& slots) = 0;
    // Attaches worker `name`, authenticated on the connection `sender`
    // ("tcp#N", where a bus name would be) from `peer`; `link` is the
    // connection's bus. `drop_link` closes the connection when the master
    // detaches the worker. On success `path` is the worker's object.
    virtual Status attach_remote(const std::string& name, const std::string& sender, const std::string& peer,
                                 sd_bus* link, std::function<void(const std::string&)> drop_link,
                                 const std::map<std::string, std::string>& info, std::string& path) = 0;
    // The connection `sender` closed on its own.
    virtual void link_lost(const std::string& sender, const std::string& reason) = 0;
    // Detaches worker `name` and closes its remote connection, if any
    // (a failed keepalive, or a duplicate connection won).
    virtual void drop_worker(const std::string& name, DetachCause cause, const std::string& reason) = 0;
    // Agent1.SetKeepalive(interval) and Agent1.Ping to attached worker
    // `name` over its link, answered through `callback` (a ping's timeout
    // as an error). Negative errno; -ENOTCONN when it is not attached.
    virtual int tell_worker_keepalive(const std::string& name, uint64_t interval, sd_bus_message_handler_t callback,
                                      void* userdata, SlotPtr& slot) = 0;
    virtual int ping_worker(const std::string& name, uint64_t timeout_usec, sd_bus_message_handler_t callback,
                            void* userdata, SlotPtr& slot) = 0;

    // Master1.TlsFingerprint: the certificate remote workers now see; empty
    // with tls = no.
    virtual void set_tls_fingerprint(const std::string& fingerprint) = 0;

protected:
    ~RemoteHost() = default;
};

}  // namespace by::master
