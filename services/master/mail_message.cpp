#include "master/mail_message.hpp"

#include <algorithm>
#include <ctime>
#include <initializer_list>
#include <utility>

#include <fmt/format.h>

#include "common/config.hpp"

namespace by::master {

namespace {

struct BrokenDown {
    std::tm tm{};
    bool ok = false;
};

BrokenDown local(uint64_t usec) {
    BrokenDown b;
    const auto t = static_cast<time_t>(usec / 1000000);
    b.ok = localtime_r(&t, &b.tm) != nullptr;
    return b;
}

// "+0100" from the broken-down time's offset.
std::string zone_offset(const std::tm& tm) {
    const long off = tm.tm_gmtoff;
    const long abs = off < 0 ? -off : off;
    return fmt::format("{}{:02}{:02}", off < 0 ? '-' : '+', abs / 3600, (abs % 3600) / 60);
}

std::string ymd_hms(const std::tm& tm) {
    return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string both_times(uint64_t usec) { return local_time(usec) + ", " + utc_time(usec); }

// Whether the body cannot go as plain 7bit: 8-bit bytes, control
// characters (a bare CR included) or lines longer than SMTP allows.
bool needs_encoding(std::string_view body) {
    std::size_t line = 0;
    for (unsigned char c : body) {
        if (c == '\n') {
            line = 0;
            continue;
        }
        if (c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f || ++line > 900) {
            return true;
        }
    }
    return false;
}

std::string crlf(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 40);
    for (char c : text) {
        if (c == '\n') {
            out += '\r';
        }
        out += c;
    }
    return out;
}

// "To: a@x, b@y" folded so that no line passes 78 characters.
std::string address_header(const std::string& name, const std::vector<std::string>& addresses) {
    std::string out = name + ":";
    std::size_t column = out.size();
    for (std::size_t i = 0; i < addresses.size(); ++i) {
        const std::string item = addresses[i] + (i + 1 < addresses.size() ? "," : "");
        if (i > 0 && column + 1 + item.size() > 78) {
            out += "\r\n";
            column = 0;
        }
        out += " " + item;
        column += 1 + item.size();
    }
    return out + "\r\n";
}

OutgoingMail compose(const std::string& from, const std::vector<std::string>& to, std::string subject,
                     const MessageStamp& stamp, std::initializer_list<std::pair<const char*, std::string>> extra,
                     const std::string& body) {
    const bool encode = needs_encoding(body);
    OutgoingMail m;
    m.from = from;
    m.to = to;
    m.subject = std::move(subject);
    std::string& t = m.text;
    t += "Date: " + rfc5322_date(stamp.now) + "\r\n";
    t += "From: " + from + "\r\n";
    t += address_header("To", to);
    t += "Subject: " + m.subject + "\r\n";
    t += fmt::format("Message-ID: <{}.{}.buildyard@{}>\r\n", stamp.now, stamp.token, stamp.hostname);
    t += "Auto-Submitted: auto-generated\r\n";
    for (const auto& [name, value] : extra) {
        t += std::string(name) + ": " + value + "\r\n";
    }
    t += "MIME-Version: 1.0\r\n";
    t += "Content-Type: text/plain; charset=utf-8\r\n";
    t += std::string("Content-Transfer-Encoding: ") + (encode ? "quoted-printable" : "7bit") + "\r\n";
    t += "\r\n";
    t += encode ? quoted_printable(body) : crlf(body);
    return m;
}

}  // namespace

std::string rfc5322_date(uint64_t usec) {
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const BrokenDown b = local(usec);
    if (!b.ok) {
        return "Thu, 01 Jan 1970 00:00:00 +0000";
    }
    const std::tm& tm = b.tm;
    return fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} {}", days[tm.tm_wday % 7], tm.tm_mday,
                       months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, zone_offset(tm));
}

std::string local_time(uint64_t usec) {
    const BrokenDown b = local(usec);
    if (!b.ok) {
        return "?";
    }
    const std::string zone = b.tm.tm_zone ? b.tm.tm_zone : "";
    const std::string offset = zone_offset(b.tm);
    return ymd_hms(b.tm) + " " + (zone.empty() || zone == offset ? offset : zone + " (" + offset + ")");
}

std::string utc_time(uint64_t usec) {
    const auto t = static_cast<time_t>(usec / 1000000);
    std::tm tm{};
    if (!gmtime_r(&t, &tm)) {
        return "?";
    }
    return ymd_hms(tm) + " UTC";
}

std::string format_duration(uint64_t usec) {
    uint64_t s = usec / 1000000;
    const uint64_t h = s / 3600, min = (s % 3600) / 60;
    s %= 60;
    std::string out;
    if (h > 0) {
        out += fmt::format("{} h ", h);
    }
    if (h > 0 || min > 0) {
        out += fmt::format("{} min ", min);
    }
    return out + fmt::format("{} s", s);
}

std::string_view log_tail(std::string_view log, std::size_t lines) {
    if (lines == 0 || log.empty()) {
        return {};
    }
    // A final line without '\n' counts as a line; the '\n' ending the
    // last line does not start another.
    std::size_t end = log.size();
    if (log.back() == '\n') {
        --end;
    }
    std::size_t pos = end;
    for (std::size_t seen = 0; pos > 0; --pos) {
        if (log[pos - 1] == '\n' && ++seen == lines) {
            break;
        }
    }
    return log.substr(pos);
}

std::string quoted_printable(std::string_view text) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    std::size_t column = 0;
    auto put = [&](std::string_view piece) {
        if (column + piece.size() > 75) {
            out += "=\r\n";
            column = 0;
        }
        out += piece;
        column += piece.size();
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '\n' || (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) {
            if (c == '\r') {
                ++i;
            }
            out += "\r\n";
            column = 0;
            continue;
        }
        const bool at_line_end = i + 1 == text.size() || text[i + 1] == '\n' ||
                                 (text[i + 1] == '\r' && i + 2 < text.size() && text[i + 2] == '\n');
        const bool plain = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_line_end);
        if (plain) {
            put(std::string_view(&text[i], 1));
        } else {
            const char code[3] = {'=', hex[c >> 4], hex[c & 15]};
            put(std::string_view(code, 3));
        }
    }
    return out;
}

uint64_t retry_delay(unsigned failures, uint64_t first) {
    uint64_t delay = first;
    for (unsigned i = 1; i < failures && delay < 60 * first; ++i) {
        delay *= 2;
    }
    return std::min(delay, 60 * first);
}

OutgoingMail missing_mail(const MissingFacts& f, const std::string& from, const std::vector<std::string>& to,
                          const MessageStamp& stamp) {
    std::string body;
    if (f.latent) {
        body = fmt::format("The machine of the Buildyard latent worker {} did not come up for the master {}.\n\n",
                           f.worker, f.master_name);
        body += fmt::format("Wanted since:        {}\n", both_times(f.since));
        if (!f.start_error.empty()) {
            body += fmt::format("Failed starts:       {} in a row; the master retries with a growing pause\n",
                                f.start_failures);
            body += fmt::format("Last error:          {}\n", f.start_error);
        } else {
            body += fmt::format("Its worker has not attached within {}.\n", format_duration(f.timeout * 1000000));
        }
        body += fmt::format("Admin:               {}\n", f.admin.empty() ? "unknown" : f.admin);
        body += "\nTo check on it:\n";
        body += "  buildyardctl workers                  (on the master)\n";
        body += "  journalctl -u buildyard-latentd       (on the master's machine)\n";
        body += "\nThis is the only mail about this trouble. The next one comes only if the\n"
                "worker attaches and then its machine fails again.\n";
        return compose(from, to, "Buildyard worker " + f.worker + " missing", stamp,
                       {{"X-Buildyard-Worker", f.worker}}, body);
    }
    body = fmt::format("The Buildyard worker {} has been missing from the master {} for more than {}.\n\n", f.worker,
                       f.master_name, format_duration(f.timeout * 1000000));
    if (f.ever_attached) {
        body += fmt::format("Last disconnected:   {}\n", both_times(f.since));
        body += fmt::format("Last connected from: {}\n", f.host.empty() ? "unknown" : f.host);
        body += fmt::format("Admin:               {}\n", f.admin.empty() ? "unknown (the worker reported none)" : f.admin);
    } else {
        body += fmt::format("It has not attached since the master first saw it in its configuration, at\n{}.\n",
                            both_times(f.since));
        body += fmt::format("Admin:               {}\n", f.admin.empty() ? "unknown (it never reported one)" : f.admin);
    }
    std::string unit = "buildyard-worker@" + config::escape_unit_instance(f.worker) + ".service";
    if (unit.find('\\') != std::string::npos) {
        unit = "'" + unit + "'";  // as typed into a shell: keep the \x2d escapes
    }
    body += "\nTo check on it:\n";
    body += "  buildyardctl workers                  (on the master)\n";
    if (f.local) {
        body += fmt::format("  systemctl status {}   (on the master's machine; {} is a local worker)\n", unit,
                            f.worker);
    } else {
        body += fmt::format("  systemctl status {}   (on the worker's machine{})\n", unit,
                            f.host.empty() ? "" : ", " + f.host);
    }
    body += "\nThis is the only mail about this absence. The next one comes only if the\n"
            "worker attaches and then goes missing again.\n";
    return compose(from, to, "Buildyard worker " + f.worker + " missing", stamp, {{"X-Buildyard-Worker", f.worker}},
                   body);
}

OutgoingMail build_mail(const BuildFacts& f, const std::string& from, const std::vector<std::string>& to,
                        const MessageStamp& stamp) {
    std::string body = fmt::format("Build {} of {} on the master {} finished: {}", f.id, f.builder, f.master_name,
                                   f.result);
    body += f.exit_status >= 0 ? fmt::format(" (exit status {}).\n\n", f.exit_status) : ".\n\n";
    body += fmt::format("Worker:    {}\n", f.worker.empty() ? "none" : f.worker);
    body += fmt::format("Submitted: {}\n", f.submitted_at ? both_times(f.submitted_at) : "-");
    body += fmt::format("Started:   {}\n", f.started_at ? both_times(f.started_at) : "-");
    body += fmt::format("Finished:  {}\n", f.finished_at ? both_times(f.finished_at) : "-");
    if (f.started_at && f.finished_at >= f.started_at) {
        body += fmt::format("Duration:  {}\n", format_duration(f.finished_at - f.started_at));
    }
    if (const std::string used = describe_usage(f.usage); !used.empty()) {
        body += fmt::format("Used:      {}\n", used);
    }
    body += fmt::format("Full log:  buildyardctl log {}\n\n", f.id);
    if (f.log_tail.empty()) {
        body += "The build wrote no output.\n";
    } else {
        body += "The last 50 lines of its log:\n\n";
        body += f.log_tail;
        if (f.log_tail.back() != '\n') {
            body += '\n';
        }
    }
    return compose(from, to, fmt::format("Buildyard {} #{}: {}", f.builder, f.id, f.result), stamp,
                   {{"X-Buildyard-Build", std::to_string(f.id)}, {"X-Buildyard-Builder", f.builder}}, body);
}

}  // namespace by::master
