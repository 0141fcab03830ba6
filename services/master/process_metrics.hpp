// The usual process_* metrics of a Prometheus client (CPU time, memory,
// file descriptors, start time), read from /proc/self on each scrape, on
// the HTTP server's thread. prometheus-cpp has no collector for them.
#pragma once

#include <memory>

namespace prometheus {
class Collectable;
}

namespace by::master {

std::shared_ptr<prometheus::Collectable> make_process_collector();

}  // namespace by::master
