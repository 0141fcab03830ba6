// Reading D-Bus property values (variants and a{sv}) into ctl::Value.
#pragma once

#include <systemd/sd-bus.h>

#include "ctl/value.hpp"

namespace by::ctl {

// Reads one "v" at the message's read position. Types buildyardctl does not
// know are skipped and left as std::monostate. Negative errno on failure.
int read_variant(sd_bus_message* m, Value& out);

// Reads an "a{sv}" (the reply of org.freedesktop.DBus.Properties.GetAll).
int read_property_map(sd_bus_message* m, PropertyMap& out);

}  // namespace by::ctl
