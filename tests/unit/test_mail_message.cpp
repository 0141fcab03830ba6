// The master's mails: headers, bodies, encodings and the retry schedule.
#include <gtest/gtest.h>

#include <string>

#include "master/mail_message.hpp"
#include "time_zone.hpp"

using namespace by::master;

namespace {

constexpr uint64_t S = 1000000;
// Tue, 05 Mar 2024 06:07:08 UTC
constexpr uint64_t t0 = 1709618828ull * S;

// Pins the local time zone to a fixed CET (UTC+1, no DST).
class MailTest : public TimeZoneTest {
protected:
    MailTest() : TimeZoneTest("CET-1") {}

    MessageStamp stamp{t0, "master.example.org", "00112233aabbccdd"};
};

struct Parsed {
    std::vector<std::pair<std::string, std::string>> headers;  // unfolded
    std::string body;

    std::string get(const std::string& name) const {
        for (const auto& [k, v] : headers) {
            if (k == name) return v;
        }
        return "<absent>";
    }
    int count(const std::string& name) const {
        int n = 0;
        for (const auto& [k, v] : headers) n += k == name;
        return n;
    }
};

// Splits a CRLF message; fails the test on a bare LF or an over-long line.
Parsed parse(const std::string& text) {
    Parsed p;
    std::vector<std::string> lines;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find("\r\n", pos);
        if (end == std::string::npos) {
            ADD_FAILURE() << "message does not end in CRLF";
            end = text.size();
        }
        std::string line = text.substr(pos, end - pos);
        EXPECT_EQ(line.find('\n'), std::string::npos) << "bare LF in: " << line;
        EXPECT_EQ(line.find('\r'), std::string::npos) << "bare CR in: " << line;
        EXPECT_LE(line.size(), 998u);
        lines.push_back(line);
        pos = end + 2;
    }
    size_t i = 0;
    for (; i < lines.size() && !lines[i].empty(); ++i) {
        if ((lines[i][0] == ' ' || lines[i][0] == '\t') && !p.headers.empty()) {
            p.headers.back().second += lines[i];
            continue;
        }
        auto colon = lines[i].find(": ");
        EXPECT_NE(colon, std::string::npos) << lines[i];
        p.headers.emplace_back(lines[i].substr(0, colon), lines[i].substr(colon + 2));
    }
    EXPECT_LT(i, lines.size()) << "no blank line after the headers";
    for (++i; i < lines.size(); ++i) {
        p.body += lines[i] + "\n";
    }
    return p;
}

std::string qp_decode(const std::string& in) {
    std::string out;
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '=' && i + 1 < in.size() && in[i + 1] == '\n') {
            ++i;  // soft line break (parse() turned CRLF into LF)
        } else if (in[i] == '=' && i + 2 < in.size()) {
            out += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += in[i];
        }
    }
    return out;
}

MissingFacts missing_facts() {
    MissingFacts f;
    f.worker = "w1";
    f.master_name = "ci-main";
    f.local = true;
    f.since = t0;
    f.timeout = 300;
    f.host = "builder7.example.org";
    f.admin = "Alice <alice@example.org>";
    return f;
}

}  // namespace

TEST_F(MailTest, Dates) {
    EXPECT_EQ(rfc5322_date(t0), "Tue, 05 Mar 2024 07:07:08 +0100");
    EXPECT_EQ(local_time(t0), "2024-03-05 07:07:08 CET (+0100)");
    EXPECT_EQ(utc_time(t0), "2024-03-05 06:07:08 UTC");
    set_time_zone("<-0330>3:30");  // a zone without a name, west of UTC
    EXPECT_EQ(rfc5322_date(t0), "Tue, 05 Mar 2024 02:37:08 -0330");
    EXPECT_EQ(local_time(t0), "2024-03-05 02:37:08 -0330");
}

TEST_F(MailTest, Durations) {
    EXPECT_EQ(format_duration(0), "0 s");
    EXPECT_EQ(format_duration(45 * S + 999999), "45 s");
    EXPECT_EQ(format_duration(65 * S), "1 min 5 s");
    EXPECT_EQ(format_duration(3600 * S), "1 h 0 min 0 s");
    EXPECT_EQ(format_duration(3723 * S), "1 h 2 min 3 s");
}

TEST_F(MailTest, MissingMailHeaders) {
    const auto m = missing_mail(missing_facts(), "buildyard@example.org", {"bob@example.com"}, stamp);
    EXPECT_EQ(m.subject, "Buildyard worker w1 missing");
    EXPECT_EQ(m.from, "buildyard@example.org");
    EXPECT_EQ(m.to, std::vector<std::string>{"bob@example.com"});
    const Parsed p = parse(m.text);
    EXPECT_EQ(p.get("Subject"), "Buildyard worker w1 missing");
    EXPECT_EQ(p.get("From"), "buildyard@example.org");
    EXPECT_EQ(p.get("To"), "bob@example.com");
    EXPECT_EQ(p.get("Date"), "Tue, 05 Mar 2024 07:07:08 +0100");
    EXPECT_EQ(p.get("Message-ID"), "<1709618828000000.00112233aabbccdd.buildyard@master.example.org>");
    EXPECT_EQ(p.get("Auto-Submitted"), "auto-generated");
    EXPECT_EQ(p.get("MIME-Version"), "1.0");
    EXPECT_EQ(p.get("Content-Type"), "text/plain; charset=utf-8");
    EXPECT_EQ(p.get("Content-Transfer-Encoding"), "7bit");
    EXPECT_EQ(p.get("X-Buildyard-Worker"), "w1");
    for (const char* h : {"Date", "From", "To", "Subject", "Message-ID", "Auto-Submitted"}) {
        EXPECT_EQ(p.count(h), 1) << h;
    }
}

TEST_F(MailTest, MessageIdsDifferWithTheToken) {
    MessageStamp other = stamp;
    other.token = "ffeeddccbbaa9988";
    const auto a = parse(missing_mail(missing_facts(), "b@x.org", {"c@x.org"}, stamp).text);
    const auto b = parse(missing_mail(missing_facts(), "b@x.org", {"c@x.org"}, other).text);
    EXPECT_NE(a.get("Message-ID"), b.get("Message-ID"));
}

TEST_F(MailTest, EveryRecipientInOneToHeader) {
    const std::vector<std::string> to = {"bob@example.com", "alice@example.org", "carol.with.a.long.name@example.net",
                                         "dave@example.com"};
    const auto m = missing_mail(missing_facts(), "b@x.org", to, stamp);
    EXPECT_EQ(m.to, to);
    const Parsed p = parse(m.text);
    EXPECT_EQ(p.count("To"), 1);
    EXPECT_EQ(p.count("Cc"), 0);
    EXPECT_EQ(p.get("To"),
              "bob@example.com, alice@example.org, carol.with.a.long.name@example.net, dave@example.com");
    // Folded: no header line passes 78 characters.
    size_t pos = 0, end = m.text.find("\r\n\r\n");
    while (pos < end) {
        size_t eol = m.text.find("\r\n", pos);
        EXPECT_LE(eol - pos, 78u) << m.text.substr(pos, eol - pos);
        pos = eol + 2;
    }
}

TEST_F(MailTest, MissingMailBody) {
    const auto p = parse(missing_mail(missing_facts(), "b@x.org", {"c@x.org"}, stamp).text);
    EXPECT_NE(p.body.find("The Buildyard worker w1 has been missing from the master ci-main for more than 5 min 0 s."),
              std::string::npos)
        << p.body;
    EXPECT_NE(p.body.find("Last disconnected:   2024-03-05 07:07:08 CET (+0100), 2024-03-05 06:07:08 UTC\n"),
              std::string::npos)
        << p.body;
    EXPECT_NE(p.body.find("Last connected from: builder7.example.org\n"), std::string::npos) << p.body;
    EXPECT_NE(p.body.find("Admin:               Alice <alice@example.org>\n"), std::string::npos) << p.body;
    EXPECT_NE(p.body.find("buildyardctl workers"), std::string::npos) << p.body;
    EXPECT_NE(p.body.find("systemctl status buildyard-worker@w1.service"), std::string::npos) << p.body;
    EXPECT_NE(p.body.find("w1 is a local worker"), std::string::npos) << p.body;
}

TEST_F(MailTest, MissingMailForAStandardWorkerWithoutInfo) {
    MissingFacts f = missing_facts();
    f.worker = "bot-linux";
    f.local = false;
    f.host.clear();
    f.admin.clear();
    const auto p = parse(missing_mail(f, "b@x.org", {"c@x.org"}, stamp).text);
    EXPECT_EQ(p.get("Subject"), "Buildyard worker bot-linux missing");
    EXPECT_NE(p.body.find("Last connected from: unknown\n"), std::string::npos) << p.body;
    EXPECT_NE(p.body.find("Admin:               unknown"), std::string::npos) << p.body;
    // Quoted so that a shell keeps systemd's escape.
    EXPECT_NE(p.body.find("systemctl status 'buildyard-worker@bot\\x2dlinux.service'   (on the worker's machine)"),
              std::string::npos)
        << p.body;
}

TEST_F(MailTest, MissingMailForAWorkerThatNeverAttached) {
    MissingFacts f = missing_facts();
    f.ever_attached = false;
    f.host.clear();
    f.admin.clear();
    const auto p = parse(missing_mail(f, "b@x.org", {"c@x.org"}, stamp).text);
    EXPECT_NE(p.body.find("It has not attached since the master first saw it in its configuration, at\n"
                          "2024-03-05 07:07:08 CET (+0100), 2024-03-05 06:07:08 UTC."),
              std::string::npos)
        << p.body;
    EXPECT_EQ(p.body.find("Last disconnected"), std::string::npos) << p.body;
}

TEST_F(MailTest, MissingMailForALatentWorkerThatFailedToStart) {
    MissingFacts f = missing_facts();
    f.worker = "vm1";
    f.local = false;
    f.latent = true;
    f.start_failures = 2;
    f.start_error = "its machine did not start: base image /img/base.qcow2 not found";
    const auto p = parse(missing_mail(f, "b@x.org", {"c@x.org"}, stamp).text);
    EXPECT_EQ(p.get("Subject"), "Buildyard worker vm1 missing");
    EXPECT_NE(p.body.find("The machine of the Buildyard latent worker vm1 did not come up for the master ci-main."),
              std::string::npos)
        << p.body;
    EXPECT_NE(p.body.find("Wanted since:        2024-03-05 07:07:08 CET (+0100), 2024-03-05 06:07:08 UTC"),
              std::string::npos)
        << p.body;
    EXPECT_NE(p.body.find("Failed starts:       2 in a row"), std::string::npos) << p.body;
    EXPECT_NE(p.body.find("Last error:          its machine did not start: base image /img/base.qcow2 not found"),
              std::string::npos)
        << p.body;
    EXPECT_NE(p.body.find("journalctl -u buildyard-latentd"), std::string::npos) << p.body;
    EXPECT_EQ(p.body.find("systemctl status"), std::string::npos) << p.body;

    f.start_failures = 0;
    f.start_error.clear();
    const auto q = parse(missing_mail(f, "b@x.org", {"c@x.org"}, stamp).text);
    EXPECT_NE(q.body.find("Its worker has not attached within 5 min 0 s."), std::string::npos) << q.body;
}

TEST_F(MailTest, BuildMail) {
    BuildFacts f;
    f.id = 42;
    f.builder = "nightly";
    f.worker = "w1";
    f.result = "failure";
    f.exit_status = 2;
    f.master_name = "ci-main";
    f.submitted_at = t0 - 10 * S;
    f.started_at = t0;
    f.finished_at = t0 + 65 * S;
    f.log_tail = "compiling\n.hidden starts with a dot\nerror: it broke\n";
    const auto m = build_mail(f, "by@x.org", {"team@example.org", "qa@example.org"}, stamp);
    EXPECT_EQ(m.subject, "Buildyard nightly #42: failure");
    const Parsed p = parse(m.text);
    EXPECT_EQ(p.get("Subject"), "Buildyard nightly #42: failure");
    EXPECT_EQ(p.get("To"), "team@example.org, qa@example.org");
    EXPECT_EQ(p.get("Auto-Submitted"), "auto-generated");
    EXPECT_EQ(p.get("X-Buildyard-Build"), "42");
    EXPECT_EQ(p.get("Content-Transfer-Encoding"), "7bit");
    EXPECT_NE(p.body.find("Build 42 of nightly on the master ci-main finished: failure (exit status 2)."),
              std::string::npos)
        << p.body;
    EXPECT_NE(p.body.find("Worker:    w1\n"), std::string::npos) << p.body;
    EXPECT_NE(p.body.find("Duration:  1 min 5 s\n"), std::string::npos) << p.body;
    EXPECT_NE(p.body.find("Started:   2024-03-05 07:07:08 CET (+0100), 2024-03-05 06:07:08 UTC\n"),
              std::string::npos)
        << p.body;
    EXPECT_NE(p.body.find("buildyardctl log 42"), std::string::npos) << p.body;
    // The log comes last, verbatim (SMTP's dot-stuffing is libesmtp's job).
    const std::string tail = "The last 50 lines of its log:\n\n" + f.log_tail;
    EXPECT_EQ(p.body.substr(p.body.size() - tail.size()), tail) << p.body;
}

TEST_F(MailTest, BuildMailWithoutOutputOrStart) {
    BuildFacts f;
    f.id = 7;
    f.builder = "b";
    f.result = "cancelled";
    f.exit_status = -1;
    const auto p = parse(build_mail(f, "by@x.org", {"t@x.org"}, stamp).text);
    EXPECT_NE(p.body.find("finished: cancelled.\n"), std::string::npos) << p.body;
    EXPECT_NE(p.body.find("The build wrote no output."), std::string::npos) << p.body;
    EXPECT_EQ(p.body.find("Duration"), std::string::npos) << p.body;
}

TEST_F(MailTest, EightBitLogsGoQuotedPrintable) {
    BuildFacts f;
    f.id = 1;
    f.builder = "b";
    f.worker = "w";
    f.result = "success";
    f.exit_status = 0;
    f.log_tail = "gr\xc3\xbc\xc3\x9f dich = hello  \n\x1b[31mred\x1b[0m\rprogress\n" + std::string(2000, 'x') + "\n";
    const auto m = build_mail(f, "by@x.org", {"t@x.org"}, stamp);
    const Parsed p = parse(m.text);  // checks every line is short and CRLF-ended
    EXPECT_EQ(p.get("Content-Transfer-Encoding"), "quoted-printable");
    const std::string body = qp_decode(p.body);
    EXPECT_NE(body.find(f.log_tail), std::string::npos) << body;
}

TEST(QuotedPrintable, Encodes) {
    EXPECT_EQ(quoted_printable("plain text\n"), "plain text\r\n");
    EXPECT_EQ(quoted_printable("a=b"), "a=3Db");
    EXPECT_EQ(quoted_printable("trailing \nspace\t\r\n"), "trailing=20\r\nspace=09\r\n");
    EXPECT_EQ(quoted_printable("\xc3\xa9t\xc3\xa9"), "=C3=A9t=C3=A9");
    const std::string long_line = quoted_printable(std::string(200, 'a'));
    size_t pos = 0;
    while (pos < long_line.size()) {
        size_t eol = long_line.find("\r\n", pos);
        if (eol == std::string::npos) eol = long_line.size();
        EXPECT_LE(eol - pos, 76u);
        pos = eol + 2;
    }
    EXPECT_EQ(long_line.find("=\r\n"), 75u);
}

TEST(LogTail, LastLines) {
    std::string log;
    for (int i = 1; i <= 60; ++i) {
        log += "line " + std::to_string(i) + "\n";
    }
    const std::string_view tail = log_tail(log, 50);
    EXPECT_EQ(tail.substr(0, 8), "line 11\n");
    EXPECT_EQ(tail.substr(tail.size() - 8), "line 60\n");
    EXPECT_EQ(log_tail("a\nb\n", 50), "a\nb\n");
    EXPECT_EQ(log_tail("a\nb\nc", 2), "b\nc");
    EXPECT_EQ(log_tail("a\nb\nc\n", 1), "c\n");
    EXPECT_EQ(log_tail("", 50), "");
    EXPECT_EQ(log_tail("a\n", 0), "");
}

TEST(RetryDelay, DoublesUpToSixtyTimesTheFirst) {
    const uint64_t first = 30 * S;
    EXPECT_EQ(retry_delay(1, first), 30 * S);
    EXPECT_EQ(retry_delay(2, first), 60 * S);
    EXPECT_EQ(retry_delay(3, first), 120 * S);
    EXPECT_EQ(retry_delay(6, first), 960 * S);
    EXPECT_EQ(retry_delay(7, first), 1800 * S);  // 30 min
    EXPECT_EQ(retry_delay(1000, first), 1800 * S);
    EXPECT_EQ(retry_delay(0, first), 30 * S);
    EXPECT_EQ(retry_delay(3, 100000), 400000u);
}
