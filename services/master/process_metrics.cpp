#include "master/process_metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace by::master {

namespace {

namespace p = prometheus;

p::MetricFamily family(const char* name, const char* help, p::MetricType type, double value) {
    p::ClientMetric m;
    if (type == p::MetricType::Counter) {
        m.counter.value = value;
    } else {
        m.gauge.value = value;
    }
    return p::MetricFamily{name, help, type, {m}};
}

// The fields of /proc/self/stat after the command name, which may hold
// spaces and parentheses: field 3 (state) is fields[0].
std::vector<std::string> stat_fields() {
    std::ifstream in("/proc/self/stat");
    std::string line;
    std::getline(in, line);
    std::vector<std::string> fields;
    auto close = line.rfind(')');
    if (close == std::string::npos) {
        return fields;
    }
    std::istringstream rest(line.substr(close + 1));
    for (std::string f; rest >> f;) {
        fields.push_back(f);
    }
    return fields;
}

double boot_time() {
    std::ifstream in("/proc/stat");
    for (std::string key; in >> key;) {
        if (key == "btime") {
            double t = 0;
            in >> t;
            return t;
        }
        in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    return 0;
}

double open_fds() {
    DIR* d = opendir("/proc/self/fd");
    if (!d) {
        return 0;
    }
    double n = 0;
    while (dirent* e = readdir(d)) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n - 1;  // not the one opendir itself holds
}

class ProcessCollector : public p::Collectable {
public:
    std::vector<p::MetricFamily> Collect() const override {
        std::vector<p::MetricFamily> out;
        const auto f = stat_fields();
        const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
        const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
        // Fields (1-based, as proc(5) numbers them): 14 utime, 15 stime,
        // 20 num_threads, 22 starttime, 23 vsize, 24 rss.
        auto field = [&](size_t n) { return n - 3 < f.size() ? std::stod(f[n - 3]) : 0.0; };
        if (f.size() >= 22) {
            out.push_back(family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                                 p::MetricType::Counter, (field(14) + field(15)) / tick));
            out.push_back(family("process_threads", "Number of OS threads in the process.", p::MetricType::Gauge,
                                 field(20)));
            out.push_back(family("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                                 p::MetricType::Gauge, boot_time() + field(22) / tick));
            out.push_back(family("process_virtual_memory_bytes", "Virtual memory size in bytes.", p::MetricType::Gauge,
                                 field(23)));
            out.push_back(family("process_resident_memory_bytes", "Resident memory size in bytes.",
                                 p::MetricType::Gauge, field(24) * page));
        }
        out.push_back(family("process_open_fds", "Number of open file descriptors.", p::MetricType::Gauge, open_fds()));
        rlimit lim{};
        if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
            out.push_back(family("process_max_fds", "Maximum number of open file descriptors.", p::MetricType::Gauge,
                                 static_cast<double>(lim.rlim_cur)));
        }
        return out;
    }
};

}  // namespace

std::shared_ptr<prometheus::Collectable> make_process_collector() { return std::make_shared<ProcessCollector>(); }

}  // namespace by::master
