// Prints CLOCK_REALTIME in microseconds: run as a build step, it stamps the
// moment the step really started, for the latency benchmarks.
#include <cstdio>
#include <ctime>

int main() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    std::printf("STAMP %lld\n", static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000);
    return 0;
}
