#include "common/config_ini.hpp"

#include <cstring>
#include <string_view>

#include <ini.h>

#include "common/config_values.hpp"
#include "common/text.hpp"

#include <fmt/format.h>

// inih as Debian builds it has no line numbers in the handler, a fixed
// 200-byte line buffer, multi-line values and inline ';' comments, and it
// calls the handler only for KEY = VALUE lines (not for section headers or
// syntax errors, whose line it merely returns, and only the first one).
//
// So we feed inih through our own reader, which counts lines (the handler
// always runs for the line read last) and classifies each line the way inih
// will treat it. That is how we learn where sections start (including empty
// and repeated ones, and names longer than inih's 50-byte section buffer),
// which lines were syntax errors, and which lines are too long for the
// buffer (we report those instead of letting inih split them in two).
//
// Continuation lines (an indented line after a KEY = VALUE line, which inih
// hands over as another value for the previous key) are rejected as errors:
// none of our values spans lines, and an accidentally indented "key = value"
// would otherwise silently become part of the previous value.

namespace by::config::detail {

namespace {

constexpr std::size_t max_config_size = 16 * 1024 * 1024;

enum class LineKind { blank, header, setting, continuation, rejected };

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

class Parser {
public:
    Parser(std::string path, std::string_view content, std::vector<Error>& errors)
        : content_(content), errors_(errors), first_error_(errors.size()) {
        file_.path = std::move(path);
        file_.sections.push_back({});
    }

    IniFile finish(int inih_result) {
        finish_line();
        if (inih_result > 0 && !has_error_at(inih_result)) {
            // inih rejected a line we took for valid; never hide that.
            errors_.push_back({file_.path, inih_result, "", "", "syntax error"});
        } else if (inih_result < 0) {
            errors_.push_back({file_.path, 0, "", "", "cannot parse (inih error " + std::to_string(inih_result) + ")"});
        }
        return std::move(file_);
    }

    static char* reader(char* buffer, int size, void* self) {
        return static_cast<Parser*>(self)->next_line(buffer, size);
    }

    static int handler(void* self, const char* /*section*/, const char* name, const char* value) {
        static_cast<Parser*>(self)->setting(name ? name : "", value ? value : "");
        return 1;
    }

private:
    void error(std::string key, std::string message) {
        errors_.push_back({file_.path, line_, current_ >= 0 ? current_label_ : "", std::move(key), std::move(message)});
    }

    bool has_error_at(int line) const {
        for (std::size_t i = first_error_; i < errors_.size(); ++i) {
            if (errors_[i].line == line) {
                return true;
            }
        }
        return false;
    }

    // Called before reading the next line and at the end: a line that looked
    // like a setting but never reached the handler had no '=' or ':'.
    void finish_line() {
        if (kind_ == LineKind::setting && !handled_) {
            error("", "expected KEY = VALUE, found '" + std::string(trim(text_)) + "'");
        }
        kind_ = LineKind::blank;
    }

    char* next_line(char* buffer, int size) {
        finish_line();
        if (pos_ >= content_.size()) {
            return nullptr;
        }
        const auto newline = content_.find('\n', pos_);
        const auto end = newline == std::string_view::npos ? content_.size() : newline;
        text_ = content_.substr(pos_, end - pos_);
        pos_ = newline == std::string_view::npos ? content_.size() : newline + 1;
        ++line_;
        handled_ = false;

        // The buffer must hold the text, '\n' and '\0'.
        const std::size_t max_text = size > 2 ? static_cast<std::size_t>(size) - 2 : 0;
        const bool too_long = text_.size() > max_text;
        // Values reach D-Bus, JSON and mail, which all want UTF-8: a line
        // that is not UTF-8 is an error here rather than a failure there.
        const std::size_t bad_byte = text::first_invalid_utf8(text_);
        if (too_long || text_.find('\0') != std::string_view::npos || bad_byte != std::string_view::npos) {
            const auto t = trim(text_);
            if (!t.empty() && t[0] == '[' && !(is_space(text_[0]) && !last_key_.empty())) {
                current_ = -1;  // a lost header: drop its settings instead of misfiling them
            }
            if (too_long) {
                error("", "line is longer than " + std::to_string(max_text) + " characters");
            } else if (text_.find('\0') != std::string_view::npos) {
                error("", "line contains a NUL byte");
            } else {
                error("", fmt::format("line is not valid UTF-8 (byte 0x{:02x} at column {})",
                                      static_cast<unsigned char>(text_[bad_byte]), bad_byte + 1));
            }
            kind_ = LineKind::rejected;
            std::memcpy(buffer, "\n", 2);
            return buffer;
        }
        classify();
        std::memcpy(buffer, text_.data(), text_.size());
        buffer[text_.size()] = '\n';
        buffer[text_.size() + 1] = '\0';
        return buffer;
    }

    // Mirrors inih's decision for the line in text_.
    void classify() {
        std::string_view t = text_;
        if (line_ == 1 && t.starts_with("\xEF\xBB\xBF")) {
            t.remove_prefix(3);
        }
        std::size_t start = 0;
        while (start < t.size() && is_space(t[start])) {
            ++start;
        }
        if (start == t.size() || t[start] == ';' || t[start] == '#') {
            kind_ = LineKind::blank;
        } else if (start > 0 && !last_key_.empty()) {
            kind_ = LineKind::continuation;
        } else if (t[start] == '[') {
            header(t.substr(start));
        } else {
            kind_ = LineKind::setting;
        }
    }

    void header(std::string_view t) {
        // Like inih: the first ']', unless an inline comment (';' after
        // whitespace) comes first.
        std::size_t close = std::string_view::npos;
        bool was_space = false;
        for (std::size_t i = 1; i < t.size(); ++i) {
            if (t[i] == ']') {
                close = i;
                break;
            }
            if (was_space && t[i] == ';') {
                break;
            }
            was_space = is_space(t[i]);
        }
        if (close == std::string_view::npos) {
            current_ = -1;
            error("", "section header is missing ']'");
            kind_ = LineKind::rejected;
            return;
        }
        kind_ = LineKind::header;
        file_.sections.push_back({std::string(trim(t.substr(1, close - 1))), line_, {}});
        current_ = static_cast<int>(file_.sections.size()) - 1;
        current_label_ = file_.sections.back().header;
        last_key_.clear();
        const auto rest = trim(t.substr(close + 1));
        if (!rest.empty() && rest[0] != ';' && rest[0] != '#') {
            error("", "unexpected text after the section header: '" + std::string(rest) + "'");
        }
    }

    // Whether the value part of the raw line holds a ';' after a blank.
    bool has_inline_comment() const {
        const auto eq = text_.find_first_of("=:");
        bool was_space = false;
        for (std::size_t i = eq == std::string_view::npos ? 0 : eq + 1; i < text_.size(); ++i) {
            if (was_space && text_[i] == ';') {
                return true;
            }
            was_space = is_space(text_[i]);
        }
        return false;
    }

    void setting(const std::string& name, const std::string& value) {
        handled_ = true;
        if (kind_ == LineKind::continuation) {
            error(last_key_, "indented line continues the previous value; continuation lines are not "
                             "supported (remove the indentation)");
            return;
        }
        last_key_ = name;
        if (current_ < 0) {
            return;
        }
        if (name.empty()) {
            error("", "missing key name before '='");
            return;
        }
        if (name.starts_with("step.") && has_inline_comment()) {
            // inih would cut the command at the comment and run what is left.
            error(name, "';' after a blank starts a comment, so this step would run only '" + value +
                            "'; join commands with && or write ';' without a blank before it");
            // Keep the (cut) step so no second, misleading "no steps" error follows.
        }
        file_.sections[static_cast<std::size_t>(current_)].settings.push_back({name, value, line_});
    }

    IniFile file_;
    std::string_view content_;
    std::vector<Error>& errors_;
    std::size_t first_error_;
    std::size_t pos_ = 0;
    int line_ = 0;
    std::string_view text_;
    LineKind kind_ = LineKind::blank;
    bool handled_ = false;
    int current_ = 0;             // index into file_.sections; -1 after a bad header
    std::string current_label_;   // header of the current section, for errors
    std::string last_key_;        // inih's "previous name": empty right after a header
};

}  // namespace

std::optional<IniFile> read_ini(const std::string& path, std::vector<Error>& errors) {
    std::string why;
    const auto content = read_file(path, max_config_size, why);
    if (!content) {
        errors.push_back({path, 0, "", "", why});
        return std::nullopt;
    }
    Parser parser(path, *content, errors);
    const int result = ini_parse_stream(&Parser::reader, &parser, &Parser::handler, &parser);
    return parser.finish(result);
}

}  // namespace by::config::detail
