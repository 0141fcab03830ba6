// The PostgreSQL store's build logs: the log of an ended build, saved by
// the master that ran it so that every master sharing the store can read
// it (ReadLog). Bytes go as bytea in hex, both ways.
#include <algorithm>

#include "master/pg_store.hpp"

namespace by::master {

namespace {

std::string to_hex(const std::string& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out = "\\x";
    out.reserve(2 + 2 * bytes.size());
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

int nibble(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

std::string from_hex(std::string_view text) {
    if (text.starts_with("\\x")) {
        text.remove_prefix(2);
    }
    std::string out;
    out.reserve(text.size() / 2);
    for (size_t i = 0; i + 1 < text.size(); i += 2) {
        out.push_back(static_cast<char>(nibble(text[i]) << 4 | nibble(text[i + 1])));
    }
    return out;
}

}  // namespace

void PgStore::prepare_logs() {
    // Only for a build this master ran, while it holds its fence. (A build
    // it let go when it was fenced is taken over, and its log never sent:
    // BuildLifecycle::ended_stored.)
    db_.prepare("save_log",
                pg_fenced_write("INSERT INTO build_logs (build, master, content) SELECT $1, $2, $4::bytea "
                                "WHERE EXISTS (SELECT 1 FROM builds WHERE id = $1 AND master = $2)",
                                2, 3) +
                    " ON CONFLICT (build) DO NOTHING");
    // For this transaction only.
    db_.prepare("commit_without_flush", "SELECT set_config('synchronous_commit', 'off', true)");
    // Positions count from 1 in SQL.
    db_.prepare("load_log", "SELECT substring(content FROM $2::int + 1 FOR $3::int) FROM build_logs WHERE build = $1");
}

// The logs are copies for the other masters' ReadLog, saved best effort
// (the log itself is this master's file, and one not saved is not saved
// again): their commit does not wait for the disk, so that it adds no
// flush to the builds' own. A crash of the server may lose the last ones.
bool PgStore::save_logs(const std::vector<std::pair<uint64_t, std::string>>& logs) {
    if (logs.empty()) {
        return true;
    }
    std::vector<PgCall> calls{PgCall::begin(), {"commit_without_flush", {}}};
    for (const auto& [id, text] : logs) {
        calls.push_back({"save_log", {pg_param(id), holder_, pg_param(holder_fence_), to_hex(text)}});
    }
    calls.push_back(PgCall::commit());
    return pipeline(std::move(calls), logs.size() == 1 ? "cannot save a build's log" : "cannot save the logs of builds",
                    nullptr);
}

std::optional<std::string> PgStore::load_log(uint64_t id, uint64_t offset, uint64_t max) {
    error_.clear();
    constexpr uint64_t most = INT32_MAX;
    if (offset >= most) {
        return std::string();
    }
    PgResult r = run("cannot read a build's log", "load_log",
                     {pg_param(id), pg_param(offset), pg_param(std::min(max, most))});
    if (!r || PQntuples(r.get()) == 0) {
        return std::nullopt;
    }
    return from_hex(pg_text(r.get(), 0, 0));
}

}  // namespace by::master
