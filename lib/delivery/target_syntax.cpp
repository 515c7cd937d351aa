#include "delivery/target_syntax.hpp"

#include <fmt/format.h>

namespace mailroom::mail {

namespace {

constexpr std::size_t max_shown = 60;  // longest piece of input quoted in an error

bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool is_separator(char c) { return c == ',' || c == ' ' || c == '\t' || c == '\n'; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool starts_with_icase(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (lower(s[i]) != prefix[i]) return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (is_blank(s.front()) || s.front() == '\n')) s.remove_prefix(1);
    while (!s.empty() && (is_blank(s.back()) || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

std::string shown(std::string_view s) {
    if (s.size() <= max_shown) return fmt::format("'{}'", s);
    return fmt::format("'{}...'", s.substr(0, max_shown));
}

// RFC 3463: class "." subject "." detail, each 1-3 digits; class 4 or 5 here.
bool is_status_code(std::string_view s) {
    if (s.size() < 5 || (s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
    std::size_t i = 2;
    for (int part = 0; part < 2; ++part) {
        std::size_t digits = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
        if (digits < 1 || digits > 3) return false;
        if (part == 0) {
            if (i >= s.size() || s[i] != '.') return false;
            ++i;
        }
    }
    return i == s.size();
}

// Newlines left inside a command or an error text (aliases continuation lines)
// become spaces: the command runs as one shell line, as sendmail joins them.
std::string joined(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c == '\n') c = ' ';
    return out;
}

std::string quote_content(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + '"';
}

class Parser {
public:
    Parser(std::string_view text, TargetSource source, TextPosition start)
        : s_(text), source_(source), start_(start), mark_line_(start.line) {}

    ParsedTargets run() {
        ParsedTargets out;
        if (auto e = check_bytes()) {
            out.error = std::move(e);
            return out;
        }
        for (;;) {
            while (pos_ < s_.size() && is_separator(s_[pos_])) ++pos_;
            if (pos_ >= s_.size()) break;
            if (out.targets.size() >= max_targets) {
                out.error = fail(pos_, fmt::format("more than {} targets (at column {})", max_targets,
                                                   position(pos_).column));
                break;
            }
            ParsedTarget t;
            if (auto e = item(t)) {
                out.error = std::move(e);
                break;
            }
            out.targets.push_back(std::move(t));
        }
        if (out.error) out.targets.clear();
        return out;
    }

private:
    using Failure = std::optional<TargetSyntaxError>;

    // Positions are asked for in (nearly) increasing order: the scan resumes from the
    // last answer, so a long text costs one pass, not one pass per item.
    TextPosition position(std::size_t index) const {
        if (index < mark_index_) {
            mark_index_ = 0;
            mark_line_ = start_.line;
            mark_line_begin_ = 0;
        }
        for (; mark_index_ < index && mark_index_ < s_.size(); ++mark_index_) {
            if (s_[mark_index_] == '\n') {
                ++mark_line_;
                mark_line_begin_ = mark_index_ + 1;
            }
        }
        unsigned first = mark_line_ == start_.line ? start_.column : 1;
        return TextPosition{mark_line_, static_cast<unsigned>(first + (index - mark_line_begin_))};
    }

    TargetSyntaxError fail(std::size_t index, std::string what) const {
        return TargetSyntaxError{position(index), std::move(what)};
    }

    unsigned column(std::size_t index) const { return position(index).column; }

    Failure check_bytes() const {
        for (std::size_t i = 0; i < s_.size(); ++i) {
            auto c = static_cast<unsigned char>(s_[i]);
            if (c == 0) return fail(i, fmt::format("NUL byte at column {}", column(i)));
            if (c == '\r') return fail(i, fmt::format("carriage return at column {}", column(i)));
            if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
                return fail(i, fmt::format("control character 0x{:02x} at column {}", c, column(i)));
        }
        return std::nullopt;
    }

    // Index just past a quoted string opening at `open`, or a failure when it does
    // not close on its line. A backslash inside takes the next byte.
    Failure skip_quoted(std::size_t open, std::size_t& end) const {
        std::size_t i = open + 1;
        while (i < s_.size() && s_[i] != '"' && s_[i] != '\n') {
            if (s_[i] == '\\' && i + 1 < s_.size() && s_[i + 1] != '\n') ++i;
            ++i;
        }
        if (i >= s_.size() || s_[i] != '"')
            return fail(open, fmt::format("unterminated quoted string starting at column {}", column(open)));
        end = i + 1;
        return std::nullopt;
    }

    // A token that ends at a separator outside quotes.
    Failure token(std::size_t from, std::size_t& end) const {
        std::size_t i = from;
        while (i < s_.size() && !is_separator(s_[i])) {
            if (s_[i] == '"') {
                if (auto e = skip_quoted(i, i)) return e;
            } else {
                ++i;
            }
        }
        end = i;
        return std::nullopt;
    }

    // Text that runs to the next comma outside quotes (a command, an error text);
    // with aliases it runs on over a newline (a continuation line), else it ends there.
    Failure to_comma(std::size_t from, std::size_t& end) const {
        std::size_t i = from;
        while (i < s_.size() && s_[i] != ',' && (s_[i] != '\n' || source_ == TargetSource::aliases)) {
            if (s_[i] == '"') {
                if (auto e = skip_quoted(i, i)) return e;
            } else {
                ++i;
            }
        }
        end = i;
        return std::nullopt;
    }

    Failure check_length(std::size_t begin, std::size_t end) const {
        if (end - begin > max_item_bytes)
            return fail(begin, fmt::format("item longer than {} bytes at column {}", max_item_bytes, column(begin)));
        return std::nullopt;
    }

    static std::string unquote(std::string_view quoted) {
        std::string out;
        for (std::size_t i = 1; i + 1 < quoted.size(); ++i) {
            if (quoted[i] == '\\' && i + 2 < quoted.size()) ++i;
            out += quoted[i];
        }
        return out;
    }

    Failure item(ParsedTarget& t) {
        std::size_t begin = pos_;
        t.at = position(begin);
        char c = s_[begin];
        if (source_ != TargetSource::outside) {
            if (c == '|') return command_item(t, begin);
            if (starts_with_icase(s_.substr(begin), "error:")) return error_item(t, begin);
        }
        std::size_t end = 0;
        if (source_ == TargetSource::outside) {
            // Only commas separate: `|cmd args` is one (bad) address, not two.
            if (auto e = to_comma(begin, end)) return e;
            if (auto e = check_length(begin, end)) return e;
            pos_ = end;
            return address(t, trim(s_.substr(begin, end - begin)), begin);
        }
        if (auto e = token(begin, end)) return e;
        if (auto e = check_length(begin, end)) return e;
        pos_ = end;
        std::string_view tok = s_.substr(begin, end - begin);
        if (c == '"') {
            std::size_t close = 0;
            if (auto e = skip_quoted(begin, close)) return e;
            if (close == end) return quoted_item(t, tok, begin);  // the whole item is quoted
            return address(t, tok, begin);                         // "odd name"@host
        }
        if (c == '\\') return own_mailbox(t, tok.substr(1), begin);
        if (starts_with_icase(tok, ":include:")) return include_item(t, begin);
        if (c == '/') return file(t, tok, begin);
        return address(t, tok, begin);
    }

    Failure command_item(ParsedTarget& t, std::size_t begin) {
        std::size_t end = 0;
        if (auto e = to_comma(begin, end)) return e;
        if (auto e = check_length(begin, end)) return e;
        pos_ = end;
        return command(t, trim(s_.substr(begin + 1, end - begin - 1)), begin);
    }

    Failure command(ParsedTarget& t, std::string_view text, std::size_t begin) const {
        if (trim(text).empty()) return fail(begin, fmt::format("empty command after '|' at column {}", column(begin)));
        t.kind = TargetKind::command;
        t.value = joined(text);
        return std::nullopt;
    }

    Failure error_item(ParsedTarget& t, std::size_t begin) {
        std::size_t end = 0;
        if (auto e = to_comma(begin, end)) return e;
        if (auto e = check_length(begin, end)) return e;
        pos_ = end;
        return error(t, s_.substr(begin, end - begin), begin);
    }

    // text starts with "error:".
    Failure error(ParsedTarget& t, std::string_view text, std::size_t begin) const {
        std::string_view rest = text.substr(6);
        std::size_t code_end = 0;
        while (code_end < rest.size() && !is_blank(rest[code_end]) && rest[code_end] != '\n') ++code_end;
        std::string_view code = rest.substr(0, code_end);
        if (!is_status_code(code))
            return fail(begin, fmt::format("error: target needs a status code 4.x.y or 5.x.y, not {} (at column {})",
                                           shown(code), column(begin)));
        t.kind = TargetKind::error;
        t.status_code = std::string(code);
        t.value = joined(trim(rest.substr(code_end)));
        return std::nullopt;
    }

    // begin is the item start; the path follows ":include:" and optional blanks,
    // quoted or not.
    Failure include_item(ParsedTarget& t, std::size_t begin) {
        std::size_t i = begin + 9;
        while (i < s_.size() && is_blank(s_[i])) ++i;
        std::size_t end = i;
        if (auto e = token(i, end)) return e;
        if (auto e = check_length(begin, end)) return e;
        pos_ = end;
        std::string_view path = s_.substr(i, end - i);
        std::string decoded = (!path.empty() && path.front() == '"' && path.back() == '"' && path.size() >= 2)
                                  ? unquote(path)
                                  : std::string(path);
        return include(t, decoded, begin);
    }

    Failure include(ParsedTarget& t, std::string path, std::size_t begin) const {
        if (path.empty() || path.front() != '/')
            return fail(begin, fmt::format(":include: needs an absolute path (at column {})", column(begin)));
        t.kind = TargetKind::include;
        t.value = std::move(path);
        return std::nullopt;
    }

    Failure file(ParsedTarget& t, std::string_view path, std::size_t) const {
        t.kind = TargetKind::file;
        t.value = std::string(path);
        return std::nullopt;
    }

    Failure own_mailbox(ParsedTarget& t, std::string_view user, std::size_t begin) const {
        auto a = Address::parse(user, ParseMode::bare, ParseFlags{.allow_utf8 = true});
        if (user.empty() || !a || a->has_domain())
            return fail(begin, fmt::format("'\\' must be followed by a local user name, not {} (at column {})",
                                           shown(user), column(begin)));
        t.kind = TargetKind::own_mailbox;
        t.value = a->local_part();
        return std::nullopt;
    }

    // The whole item was one quoted string: its content decides, as in sendmail.
    Failure quoted_item(ParsedTarget& t, std::string_view tok, std::size_t begin) const {
        std::string content = unquote(tok);
        std::string_view v = content;
        if (!v.empty() && v.front() == '|') return command(t, v.substr(1), begin);
        if (!v.empty() && v.front() == '/') return file(t, v, begin);
        if (starts_with_icase(v, ":include:")) {
            std::string_view path = v.substr(9);
            while (!path.empty() && is_blank(path.front())) path.remove_prefix(1);
            return include(t, std::string(path), begin);
        }
        if (starts_with_icase(v, "error:")) return error(t, v, begin);
        return address(t, tok, begin);
    }

    Failure address(ParsedTarget& t, std::string_view tok, std::size_t begin) const {
        auto a = Address::parse(tok, ParseMode::bare, ParseFlags{.allow_utf8 = true});
        if (!a)
            return fail(begin, fmt::format("bad address {} at column {}: {}", shown(tok), column(begin),
                                           a.error().message()));
        if (a->is_null()) return fail(begin, fmt::format("empty address at column {}", column(begin)));
        t.kind = TargetKind::address;
        t.value = a->str();
        t.address = std::move(a).value();
        return std::nullopt;
    }

    std::string_view s_;
    TargetSource source_;
    TextPosition start_;
    std::size_t pos_ = 0;
    mutable std::size_t mark_index_ = 0;  // position() resumes here
    mutable unsigned mark_line_ = 0;
    mutable std::size_t mark_line_begin_ = 0;
};

}  // namespace

std::string_view target_kind_name(TargetKind kind) {
    switch (kind) {
        case TargetKind::address: return "address";
        case TargetKind::command: return "command";
        case TargetKind::file: return "file";
        case TargetKind::include: return "include";
        case TargetKind::own_mailbox: return "own mailbox";
        case TargetKind::error: return "error";
    }
    return "unknown";
}

std::string ParsedTarget::render() const {
    switch (kind) {
        case TargetKind::address: {
            // A local part that would read as another kind is bracketed: `<"|x y">`,
            // `<|x@host>` (canonical form drops the quotes `"|x"@host` had).
            const std::string& local = address.local_part();
            bool looks_special = !local.empty() && (local.front() == '|' || local.front() == '/' ||
                                                    local.front() == '\\' || local.front() == ':' ||
                                                    starts_with_icase(local, "error:"));
            if (looks_special) return "<" + value + ">";
            return value;
        }
        case TargetKind::command: return quote_content("|" + value);
        case TargetKind::file: return quote_content(value);
        case TargetKind::include: return quote_content(":include:" + value);
        case TargetKind::own_mailbox: return "\\" + Address::quote_local(value);
        case TargetKind::error:
            return quote_content("error:" + status_code + (value.empty() ? "" : " " + value));
    }
    return value;
}

std::string render_targets(const std::vector<ParsedTarget>& targets) {
    std::string out;
    for (const auto& t : targets) {
        if (!out.empty()) out += ", ";
        out += t.render();
    }
    return out;
}

ParsedTargets parse_targets(std::string_view text, TargetSource source, TextPosition start) {
    return Parser(text, source, start).run();
}

}  // namespace mailroom::mail
