// Every method call on the master's own interfaces is counted, by method and
// by the error it was answered with (Metrics::bus_call). Rather than a line
// in each handler, each vtable is registered as a copy whose methods all go
// through one trampoline that calls the real handler and looks at the outcome.
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "master/master.hpp"

namespace by::master {

namespace {

using Key = std::pair<std::string, std::string>;  // interface, member

std::map<Key, sd_bus_message_handler_t, std::less<>>& handlers() {
    static std::map<Key, sd_bus_message_handler_t, std::less<>> h;
    return h;
}

sd_bus_message_handler_t handler_of(const char* iface, const char* member) {
    auto& h = handlers();
    if (iface) {
        auto it = h.find(Key{iface, member});
        return it == h.end() ? nullptr : it->second;
    }
    for (const auto& [key, handler] : h) {
        if (key.second == member) return handler;
    }
    return nullptr;
}

int counted(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    const char* iface = sd_bus_message_get_interface(m);
    const char* member = sd_bus_message_get_member(m);
    sd_bus_message_handler_t real = member ? handler_of(iface, member) : nullptr;
    if (!real) {
        return -EBADMSG;
    }
    // The vtables are registered with the Master as their userdata (a
    // fallback's find callback may hand the handler something else). Read
    // before the handler runs: emitting a signal in it resets the current slot.
    sd_bus_slot* slot = sd_bus_get_current_slot(sd_bus_message_get_bus(m));
    auto* master = slot ? static_cast<Master*>(sd_bus_slot_get_userdata(slot)) : nullptr;
    const int r = real(m, userdata, e);
    if (!master) {
        return r;
    }
    std::string error;
    if (sd_bus_error_is_set(e)) {
        error = e->name;
    } else if (r < 0) {
        // What sd-bus will answer for a bare errno.
        BusError mapped;
        sd_bus_error_set_errno(mapped.get(), r);
        error = mapped.name();
    }
    master->metrics().bus_call(iface ? iface : "", member, error);
    return r;
}

}  // namespace

const sd_bus_vtable* counted_vtable(const char* interface, const sd_bus_vtable* vtable) {
    static std::map<const sd_bus_vtable*, std::vector<sd_bus_vtable>> copies;
    auto& copy = copies[vtable];
    if (copy.empty()) {
        for (const sd_bus_vtable* v = vtable;; ++v) {
            copy.push_back(*v);
            if (v->type == _SD_BUS_VTABLE_METHOD) {
                handlers()[Key{interface, v->x.method.member}] = v->x.method.handler;
                copy.back().x.method.handler = counted;
            }
            if (v->type == _SD_BUS_VTABLE_END) break;
        }
    }
    return copy.data();
}

}  // namespace by::master
