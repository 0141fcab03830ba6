#include "master/pg_notice.hpp"

#include <cstdlib>
#include <iterator>
#include <vector>

#include <nlohmann/json.hpp>

#include "master/store_json.hpp"

namespace by::master {

namespace {

constexpr int state_column = 4;
// Which columns of pg_build_columns() are numbers (the others are texts).
constexpr bool numeric_column[] = {true,  true, false, false, false, false, true, false,
                                   false, true, true,  true,  true,  true,  false};
constexpr size_t build_column_count = std::size(numeric_column);

std::optional<Build> row_build(std::string_view text, const std::string& builder) {
    const auto row = nlohmann::json::parse(text, nullptr, false);
    if (!row.is_array() || row.size() != build_column_count) {
        return std::nullopt;
    }
    std::vector<std::string> columns;
    for (const auto& v : row) {
        if (v.is_string() == numeric_column[columns.size()]) {
            return std::nullopt;
        }
        if (v.is_string()) {
            columns.push_back(v.get<std::string>());
        } else if (v.is_number_unsigned()) {
            columns.push_back(std::to_string(v.get<uint64_t>()));
        } else if (v.is_number_integer()) {
            columns.push_back(std::to_string(v.get<int64_t>()));
        } else {
            return std::nullopt;
        }
    }
    if (columns[state_column] != "pending") {
        return std::nullopt;
    }
    Build b = pg_build_from_columns([&](int i) { return columns[static_cast<size_t>(i)]; });
    if (b.id == 0 || b.builder != builder) {
        return std::nullopt;
    }
    return b;
}

}  // namespace

std::optional<PendingNotice> parse_pending_notice(std::string_view payload) {
    const size_t nl = payload.find('\n');
    if (nl == std::string_view::npos) {
        return std::nullopt;
    }
    PendingNotice n;
    n.master = std::string(payload.substr(0, nl));
    const std::string_view rest = payload.substr(nl + 1);
    const size_t row = rest.find('\n');
    n.builder = std::string(rest.substr(0, row));
    if (n.builder.empty()) {
        return std::nullopt;
    }
    if (row != std::string_view::npos) {
        n.build = row_build(rest.substr(row + 1), n.builder);
    }
    return n;
}

Build pg_build_from_columns(const std::function<std::string(int)>& column) {
    auto u64 = [&](int i) { return static_cast<uint64_t>(std::strtoll(column(i).c_str(), nullptr, 10)); };
    Build b;
    b.id = u64(0);
    b.request_id = u64(1);
    b.builder = column(2);
    b.worker = column(3);
    b.state = parse_build_state(column(4)).value_or(BuildState::finished);
    b.result = parse_result(column(5)).value_or(Result::exception);
    b.exit_status = static_cast<int>(std::strtol(column(6).c_str(), nullptr, 10));
    b.requested = store_json::to_map(column(7));
    b.properties = store_json::to_map(column(8));
    b.submitted_at = u64(9);
    b.started_at = u64(10);
    b.finished_at = u64(11);
    b.current_step = static_cast<unsigned>(u64(12));
    b.retried_as = u64(13);
    b.usage = store_json::to_usage(column(14));
    if (b.request_id == 0) {
        b.request_id = b.id;
    }
    return b;
}

}  // namespace by::master
