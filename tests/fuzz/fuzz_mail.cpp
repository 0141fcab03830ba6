// libFuzzer harness: the mail composer (master/mail_message.hpp) on facts
// as the master can have them. Names and addresses come from the
// configuration (valid names; values of at most one INI line); what a
// worker or a build reports (host, admin, a backend's error, the log) is
// any bytes; times and numbers are any. Each message must be one SMTP can
// carry unchanged: CRLF line ends only, no line over 998 octets, headers
// of printable ASCII, a body that is 7bit or quoted-printable as it says.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "common/config.hpp"
#include "fuzz_check.hpp"
#include "master/mail_message.hpp"

namespace {

// A name the config accepts: 1-64 of [A-Za-z0-9._-], not starting with . or -.
std::string config_name(FuzzedDataProvider& in) {
    static constexpr std::string_view chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    std::string out;
    for (auto n = in.ConsumeIntegralInRange<size_t>(1, 64); n > 0; --n) {
        out += chars[in.ConsumeIntegralInRange<size_t>(0, chars.size() - 1)];
    }
    if (!by::config::valid_worker_name(out)) {
        out = "w" + out.substr(1);
    }
    return out;
}

// An address as [mail] may hold one: printable ASCII, no spaces or commas.
std::string config_address(FuzzedDataProvider& in) {
    std::string out;
    for (char c : in.ConsumeRandomLengthString(120)) {
        if (c > 0x20 && c < 0x7f && c != ',') {
            out += c;
        }
    }
    return out.empty() ? "a@b" : out;
}

void check_message(const by::master::OutgoingMail& m) {
    const std::string& t = m.text;
    FUZZ_CHECK(!t.empty() && t.ends_with("\r\n"));
    const auto end_of_headers = t.find("\r\n\r\n");
    FUZZ_CHECK(end_of_headers != std::string::npos);
    std::size_t line = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        const auto c = static_cast<unsigned char>(t[i]);
        if (c == '\r') {
            FUZZ_CHECK(i + 1 < t.size() && t[i + 1] == '\n');  // no bare CR
            continue;
        }
        if (c == '\n') {
            FUZZ_CHECK(i > 0 && t[i - 1] == '\r');  // no bare LF
            line = 0;
            continue;
        }
        FUZZ_CHECK(++line <= 998);
        if (i < end_of_headers) {
            FUZZ_CHECK((c >= 0x20 && c < 0x7f) || c == '\t');
        }
    }
    const std::string headers = t.substr(0, end_of_headers + 2);
    const std::string body = t.substr(end_of_headers + 4);
    if (headers.find("Content-Transfer-Encoding: 7bit\r\n") != std::string::npos) {
        for (unsigned char c : body) {
            FUZZ_CHECK(c < 0x80 && c != 0);
        }
    } else {
        FUZZ_CHECK(headers.find("Content-Transfer-Encoding: quoted-printable\r\n") != std::string::npos);
        std::size_t column = 0;
        for (unsigned char c : body) {
            if (c == '\r' || c == '\n') {
                column = 0;
                continue;
            }
            FUZZ_CHECK(((c >= 0x20 && c < 0x7f) || c == '\t') && ++column <= 76);
        }
    }
    // Every header line is "Name: value" or a folded continuation.
    std::size_t from = 0;
    while (from < headers.size()) {
        const auto eol = headers.find("\r\n", from);
        const std::string_view h(headers.data() + from, eol - from);
        FUZZ_CHECK(!h.empty() && (h[0] == ' ' || h.find(": ") != std::string_view::npos));
        from = eol + 2;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    const std::string from = config_address(in);
    std::vector<std::string> to;
    for (int n = in.ConsumeIntegralInRange(1, 6); n > 0; --n) {
        to.push_back(config_address(in));
    }
    by::master::MessageStamp stamp;
    stamp.now = in.ConsumeIntegral<uint64_t>();
    stamp.hostname = config_name(in);
    stamp.token = "0123456789abcdef";

    if (in.ConsumeBool()) {
        by::master::MissingFacts f;
        f.worker = config_name(in);
        f.master_name = config_name(in);
        f.local = in.ConsumeBool();
        f.ever_attached = in.ConsumeBool();
        f.latent = in.ConsumeBool();
        f.since = in.ConsumeIntegral<uint64_t>();
        f.timeout = in.ConsumeIntegral<uint64_t>();
        f.start_failures = in.ConsumeIntegral<unsigned>();
        f.host = in.ConsumeRandomLengthString(300);
        f.admin = in.ConsumeRandomLengthString(300);
        f.start_error = in.ConsumeRandomLengthString(3000);
        const auto m = by::master::missing_mail(f, from, to, stamp);
        FUZZ_CHECK(m.from == from && m.to == to);
        check_message(m);
    } else {
        by::master::BuildFacts f;
        f.id = in.ConsumeIntegral<uint64_t>();
        f.builder = config_name(in);
        f.worker = in.ConsumeBool() ? config_name(in) : "";
        static constexpr const char* results[] = {"success", "failure", "cancelled", "exception", "retry"};
        f.result = results[in.ConsumeIntegralInRange(0, 4)];
        f.exit_status = in.ConsumeIntegral<int>();
        f.master_name = config_name(in);
        f.submitted_at = in.ConsumeIntegral<uint64_t>();
        f.started_at = in.ConsumeIntegral<uint64_t>();
        f.finished_at = in.ConsumeIntegral<uint64_t>();
        f.log_tail = std::string(by::master::log_tail(in.ConsumeRemainingBytesAsString(), 50));
        const auto m = by::master::build_mail(f, from, to, stamp);
        check_message(m);
    }
    return 0;
}
