// bench/store-claims: what the master's store takes to record the starts
// of builds, one commit per start or one per dispatch round.
//
//   store-claims [--join NAME] DIRECTORY|URI BUILDS ROUND...
//
// URI (postgresql://...): the PostgreSQL store in that database instead,
// the same one for every ROUND. With --join, the store first joins the
// cluster as master NAME (PostgreSQL only), so that each claim is fenced,
// as a master's in a cluster is.
//
// For each ROUND, opens a fresh store (state.db in DIRECTORY/ROUND, as the
// master opens it: SQLite in WAL mode, synchronous = NORMAL), submits
// BUILDS pending builds, then claims them for worker w1 in claims of ROUND
// builds each (Store::claim_builds, one commit per claim) and prints the
// time the claims took. ROUND = 1 is one commit per start, as dispatch
// recorded them before claims; 16 is a round that fills 8 workers with
// max_builds = 2.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "master/pg_store.hpp"
#include "master/store.hpp"

using by::master::Build;

int main(int argc, char** argv) {
    std::string join;
    if (argc > 2 && std::string(argv[1]) == "--join") {
        join = argv[2];
        argc -= 2;
        argv += 2;
    }
    if (argc < 4) {
        std::fprintf(stderr, "usage: store-claims [--join NAME] DIRECTORY|URI BUILDS ROUND...\n");
        return 2;
    }
    const std::string directory = argv[1];
    const long builds = std::strtol(argv[2], nullptr, 10);
    if (builds <= 0) {
        std::fprintf(stderr, "store-claims: BUILDS must be a positive number, not '%s'\n", argv[2]);
        return 2;
    }
    for (int arg = 3; arg < argc; ++arg) {
        const long round = std::strtol(argv[arg], nullptr, 10);
        if (round <= 0) {
            std::fprintf(stderr, "store-claims: ROUND must be a positive number, not '%s'\n", argv[arg]);
            return 2;
        }
        const bool pg = directory.starts_with("postgresql://") || directory.starts_with("postgres://");
        const std::string dir = directory + "/" + std::to_string(round);
        if (!pg) std::filesystem::create_directories(dir);
        std::string error;
        auto store = pg ? by::master::open_pg_store(directory, "", error) : by::master::open_sqlite_store(dir, error);
        if (!store) {
            std::fprintf(stderr, "store-claims: %s\n", error.c_str());
            return 1;
        }
        uint64_t joined = 0;
        if (!join.empty()) {
            const auto fence = store->members()
                                   ? store->members()->join({.name = join, .host = "localhost", .address = "", .pid = 1},
                                                            [](const by::master::MemberRow&, uint64_t) { return true; })
                                   : std::nullopt;
            if (!fence || *fence == 0) {
                std::fprintf(stderr, "store-claims: cannot join as %s: %s\n", join.c_str(),
                             store->members() ? store->error().c_str() : "not a PostgreSQL store");
                return 1;
            }
            joined = *fence;
        }
        std::vector<Build> pending;
        for (long i = 0; i < builds; ++i) {
            Build b;
            b.builder = "throughput";
            b.requested = {{"n", std::to_string(i)}};
            b.properties = b.requested;
            if (!store->record_submitted(b)) {
                std::fprintf(stderr, "store-claims: %s\n", store->error().c_str());
                return 1;
            }
            pending.push_back(std::move(b));
        }
        const auto t0 = std::chrono::steady_clock::now();
        long commits = 0;
        for (size_t first = 0; first < pending.size(); first += static_cast<size_t>(round)) {
            std::vector<Build> claim;
            for (size_t i = first; i < pending.size() && i < first + static_cast<size_t>(round); ++i) {
                Build b = pending[i];
                by::master::start_build(b, "w1", {}, 1);
                claim.push_back(std::move(b));
            }
            if (!store->claim_builds(claim)) {
                std::fprintf(stderr, "store-claims: %s\n", store->error().c_str());
                return 1;
            }
            ++commits;
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("claims of %ld builds in rounds of %ld (%ld commits): %.3f s, %.0f starts/s\n", builds, round,
                    commits, s, static_cast<double>(builds) / s);
        // Its builds end, and it leaves: no master declares it dead and
        // reruns them afterwards.
        for (Build& b : pending) {
            by::master::start_build(b, "w1", {}, 1);
            by::master::finish_build(b, by::master::Result::success, 0, 2);
            if (!store->record_ended(b)) {
                std::fprintf(stderr, "store-claims: %s\n", store->error().c_str());
                return 1;
            }
        }
        if (joined && !store->members()->leave(join, joined)) {
            std::fprintf(stderr, "store-claims: %s\n", store->error().c_str());
            return 1;
        }
    }
    return 0;
}
