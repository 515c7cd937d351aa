#include "smtp/access_table.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <utility>
#include <variant>

#include "core/io.hpp"
#include "core/unique_fd.hpp"
#include "core/utf8.hpp"
#include "smtp/client_networks.hpp"

namespace mailroom::smtp {

namespace {

// A host name pattern, lowercase, without its leading dot.
struct HostPattern {
    std::string suffix;
    bool subdomains_only = false;  // written ".example.com"
};

// A sender or recipient pattern, lowercase.
struct MailPattern {
    enum class Form { null_sender, address, domain, subdomains, local_part };
    Form form = Form::address;
    std::string local;   // address, local_part
    std::string domain;  // address, domain, subdomains (without the leading dot)
};

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

bool iequals(std::string_view a, std::string_view b) { return a.size() == b.size() && lower(a) == lower(b); }

bool is_blank(char c) { return c == ' ' || c == '\t'; }

bool ends_at_dot(std::string_view name, std::string_view suffix) {
    return name.size() > suffix.size() && name.ends_with(suffix) && name[name.size() - suffix.size() - 1] == '.';
}

// name: lowercase, as the client or HELO gave it.
bool name_matches(std::string_view name, const HostPattern& pattern) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);  // the root's dot changes nothing
    if (!pattern.subdomains_only && name == pattern.suffix) return true;
    return ends_at_dot(name, pattern.suffix);
}

// "[192.0.2.1]", "[IPv6:2001:db8::1]" (or "[2001:db8::1]"): the address; nothing otherwise.
std::optional<IpAddress> parse_literal(std::string_view text) {
    if (text.size() < 3 || text.front() != '[' || text.back() != ']') return std::nullopt;
    text = text.substr(1, text.size() - 2);
    if (text.size() > 5 && iequals(text.substr(0, 5), "ipv6:")) text.remove_prefix(5);
    return IpAddress::parse(text);
}

// A mail address split as the patterns see it: lowercase, at its last '@'.
struct SplitAddress {
    bool null = false;
    std::string local;
    std::string domain;  // "" when there is no '@': then only user@ patterns match
};

SplitAddress split_address(std::string_view address) {
    SplitAddress split;
    if (address.empty()) {
        split.null = true;
        return split;
    }
    std::string text = lower(address);
    auto at = text.rfind('@');
    if (at == text.npos) {
        split.local = std::move(text);
        return split;
    }
    split.local = text.substr(0, at);
    split.domain = text.substr(at + 1);
    return split;
}

bool mail_matches(const SplitAddress& a, const MailPattern& p) {
    using F = MailPattern::Form;
    if (a.null) return p.form == F::null_sender;
    switch (p.form) {
    case F::null_sender: return false;
    // A pattern's domain is never empty: an address without one matches none of these.
    case F::address: return a.local == p.local && a.domain == p.domain;
    case F::domain: return a.domain == p.domain;
    case F::subdomains: return ends_at_dot(a.domain, p.domain);
    case F::local_part: return a.local == p.local;
    }
    return false;
}

// Error texts show what the file holds, never a control byte or a whole long line.
std::string shown(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, 80)) {
        auto byte = static_cast<unsigned char>(c);
        out += byte < 0x20 || byte >= 0x7f ? '?' : c;
    }
    return text.size() > 80 ? out + "..." : out;
}

using Pattern = std::variant<Network, IpAddress, HostPattern, MailPattern>;
using PatternResult = std::variant<Pattern, std::string>;  // the pattern, or what is wrong

// A host name: labels of letters, digits, '-' (not first or last) and '_' between
// single dots, optionally after a leading dot. Nothing when it is not one; `numeric`
// tells whether its last label is all digits (an address, then, not a name).
std::optional<HostPattern> parse_host_pattern(std::string_view text, bool& numeric) {
    HostPattern pattern;
    if (!text.empty() && text.front() == '.') {
        pattern.subdomains_only = true;
        text.remove_prefix(1);
    }
    if (text.empty() || text.size() > 253) return std::nullopt;
    size_t label = 0;
    bool digits_only = true;
    char previous = '.';
    for (char c : text) {
        if (c == '.') {
            if (label == 0 || previous == '-') return std::nullopt;
            label = 0;
            digits_only = true;
            previous = c;
            continue;
        }
        if (c == '-' && previous == '.') return std::nullopt;
        previous = c;
        bool digit = c >= '0' && c <= '9';
        bool ok = digit || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
        if (!ok || ++label > 63) return std::nullopt;
        digits_only = digits_only && digit;
    }
    if (label == 0 || previous == '-') return std::nullopt;
    numeric = digits_only;
    pattern.suffix = lower(text);
    return pattern;
}

PatternResult parse_client_pattern(std::string_view text) {
    bool numeric = false;
    if (text.find_first_of(":/[]") == text.npos) {
        if (auto host = parse_host_pattern(text, numeric); host && !numeric) {
            if (host->suffix == "unknown" && !host->subdomains_only)
                return std::string("client name pattern 'unknown' never matches (a client without a name "
                                   "is not matched by name)");
            return Pattern(std::move(*host));
        }
        bool looks_numeric = text.find_first_not_of("0123456789.") == text.npos;
        if (!numeric && !looks_numeric)
            return fmt::format("client pattern '{}' is neither an address, a network nor a host name", shown(text));
    }
    auto network = Network::parse(text);
    if (!network) return network.error().message();
    return Pattern(*network);
}

PatternResult parse_helo_pattern(std::string_view text) {
    if (!text.empty() && text.front() == '[') {
        if (auto literal = parse_literal(text)) return Pattern(*literal);
        return fmt::format("helo pattern '{}' is not an address literal like [192.0.2.1] or [IPv6:2001:db8::1]",
                           shown(text));
    }
    bool numeric = false;
    auto host = parse_host_pattern(text, numeric);
    if (host && numeric)
        return fmt::format("helo pattern '{}' looks like an address: write it as a literal, [{}]", shown(text),
                           shown(text));
    if (!host) return fmt::format("helo pattern '{}' is neither a host name nor an address literal", shown(text));
    return Pattern(std::move(*host));
}

// Printable ASCII or valid UTF-8 (SMTPUTF8 addresses), no blanks (fields end there).
bool is_address_text(std::string_view text) {
    for (size_t i = 0; i < text.size();) {
        char32_t code_point = 0;
        size_t n = core::utf8_sequence(text, i, code_point);
        if (n == 0 || code_point <= 0x20 || code_point == 0x7f) return false;
        i += n;
    }
    return true;
}

PatternResult parse_mail_pattern(std::string_view text, AccessKind kind) {
    const char* what = kind == AccessKind::sender ? "sender" : "recipient";
    if (text == "<>") {
        if (kind == AccessKind::sender) return Pattern(MailPattern{MailPattern::Form::null_sender, "", ""});
        return std::string("'<>' (the null sender) is a sender pattern, not a recipient one");
    }
    if (!is_address_text(text))
        return fmt::format("{} pattern '{}' holds bytes that are neither printable ASCII nor UTF-8", what, shown(text));
    if (text.find_first_of("<>") != text.npos)
        return fmt::format("{} pattern '{}': write addresses without angle brackets", what, shown(text));
    auto at = text.rfind('@');
    if (at == text.npos)
        return fmt::format("{} pattern '{}' has no '@' (write user@domain, @domain or user@)", what, shown(text));
    MailPattern pattern;
    pattern.local = lower(text.substr(0, at));
    pattern.domain = lower(text.substr(at + 1));
    if (pattern.local.empty() && pattern.domain.empty())
        return fmt::format("{} pattern '@' matches nothing (write user@domain, @domain or user@)", what);
    if (pattern.domain.empty()) {
        pattern.form = MailPattern::Form::local_part;
    } else if (pattern.local.empty()) {
        pattern.form = MailPattern::Form::domain;
        if (pattern.domain.front() == '.') {
            pattern.form = MailPattern::Form::subdomains;
            pattern.domain.erase(0, 1);
        }
    }
    if (pattern.form != MailPattern::Form::local_part &&
        (pattern.domain.empty() || pattern.domain.front() == '.' || pattern.domain.back() == '.' ||
         pattern.domain.find("..") != std::string::npos))
        return fmt::format("{} pattern '{}' has an empty domain label", what, shown(text));
    return Pattern(std::move(pattern));
}

std::optional<AccessKind> parse_kind(std::string_view word) {
    std::string w = lower(word);
    if (w == "client") return AccessKind::client;
    if (w == "helo") return AccessKind::helo;
    if (w == "sender") return AccessKind::sender;
    if (w == "recipient") return AccessKind::recipient;
    return std::nullopt;
}

std::optional<AccessAction> parse_action(std::string_view word) {
    std::string w = lower(word);
    if (w == "ok") return AccessAction::ok;
    if (w == "reject") return AccessAction::reject;
    if (w == "defer") return AccessAction::defer;
    return std::nullopt;
}

// The next field of `rest` (blank-separated); rest is left after it.
std::string_view next_field(std::string_view& rest) {
    size_t start = 0;
    while (start < rest.size() && is_blank(rest[start])) ++start;
    size_t end = start;
    while (end < rest.size() && !is_blank(rest[end])) ++end;
    std::string_view field = rest.substr(start, end - start);
    rest.remove_prefix(end);
    return field;
}

std::string_view trimmed(std::string_view text) {
    while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
    while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
    return text;
}

}  // namespace

struct AccessTable::Rule {
    Pattern pattern;
    AccessDecision decision;
};

AccessTable::AccessTable() = default;
AccessTable::~AccessTable() = default;
AccessTable::AccessTable(AccessTable&&) noexcept = default;
AccessTable& AccessTable::operator=(AccessTable&&) noexcept = default;
AccessTable::AccessTable(const AccessTable&) = default;
AccessTable& AccessTable::operator=(const AccessTable&) = default;

core::Result<AccessTable> AccessTable::parse(std::string_view text, std::string_view name) {
    auto error = [&](size_t line, std::string what) {
        return core::unexpected_input(fmt::format("{}:{}: {}", name, line, what));
    };
    if (text.size() > max_file_bytes)
        return core::unexpected_input(fmt::format("{}: file is larger than {} octets (4 MiB)", name, max_file_bytes));
    AccessTable table;
    size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        auto newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text.remove_prefix(newline == text.npos ? text.size() : newline + 1);
        // CRLF files (edited elsewhere) read as LF files; any other CR is refused.
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > max_line_bytes)
            return error(line_no, fmt::format("line is longer than {} octets", max_line_bytes));
        for (char c : line) {
            auto byte = static_cast<unsigned char>(c);
            if (byte == 0) return error(line_no, "a NUL byte");
            if (byte == '\r') return error(line_no, "a CR that does not end the line");
            if ((byte < 0x20 && byte != '\t') || byte == 0x7f)
                return error(line_no, fmt::format("a control character (0x{:02x})", byte));
        }
        std::string_view rest = trimmed(line);
        if (rest.empty() || rest.front() == '#') continue;

        std::string_view kind_word = next_field(rest);
        auto kind = parse_kind(kind_word);
        if (!kind)
            return error(line_no, fmt::format("unknown kind '{}' (client, helo, sender or recipient)", shown(kind_word)));
        std::string_view pattern_word = next_field(rest);
        if (pattern_word.empty()) return error(line_no, fmt::format("{} line without a PATTERN", access_kind_name(*kind)));
        std::string_view action_word = next_field(rest);
        if (action_word.empty())
            return error(line_no, fmt::format("{} line without an ACTION (OK, REJECT or DEFER)", access_kind_name(*kind)));
        auto action = parse_action(action_word);
        if (!action) return error(line_no, fmt::format("unknown action '{}' (OK, REJECT or DEFER)", shown(action_word)));
        std::string_view reply = trimmed(rest);
        if (reply.size() > max_text_bytes)
            return error(line_no, fmt::format("TEXT is longer than {} octets", max_text_bytes));
        for (char c : reply) {
            auto byte = static_cast<unsigned char>(c);
            if (byte < 0x20 || byte >= 0x7f)
                return error(line_no, fmt::format("TEXT holds the byte 0x{:02x}: it goes into an SMTP reply, "
                                                  "which takes printable ASCII only",
                                                  byte));
        }

        PatternResult pattern = *kind == AccessKind::client ? parse_client_pattern(pattern_word)
                              : *kind == AccessKind::helo   ? parse_helo_pattern(pattern_word)
                                                            : parse_mail_pattern(pattern_word, *kind);
        if (auto* what = std::get_if<std::string>(&pattern)) return error(line_no, std::move(*what));
        Rule rule{std::move(std::get<Pattern>(pattern)), AccessDecision{*action, std::string(reply), line_no}};
        switch (*kind) {
        case AccessKind::client: table.client_.push_back(std::move(rule)); break;
        case AccessKind::helo: table.helo_.push_back(std::move(rule)); break;
        case AccessKind::sender: table.sender_.push_back(std::move(rule)); break;
        case AccessKind::recipient: table.recipient_.push_back(std::move(rule)); break;
        }
    }
    return table;
}

core::Result<AccessTable> AccessTable::load(const std::string& path) {
    // O_NONBLOCK: a FIFO planted at the path must not hang the listener's start.
    core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) return core::unexpected_errno("open " + path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return core::unexpected_errno("stat " + path);
    if (!S_ISREG(st.st_mode)) return core::unexpected_input(path + ": not a regular file");
    if (static_cast<uint64_t>(st.st_size) > max_file_bytes)
        return core::unexpected_input(fmt::format("{}: file is larger than {} octets (4 MiB)", path, max_file_bytes));
    // A file that grew while read stops one octet past the limit: parse refuses it.
    auto text = core::read_up_to(fd.get(), max_file_bytes, path);
    if (!text) return core::unexpected(text.error());
    return parse(*text, path);
}

std::optional<AccessDecision> AccessTable::client(std::string_view address, std::string_view name) const {
    const auto ip = IpAddress::parse(address);
    // Postfix's unknown client: without a verified name ("unknown", or ""), only
    // addresses match. No name pattern can match either: parse refuses `unknown`.
    const std::string lower_name = lower(name);
    for (const auto& rule : client_) {
        bool match = false;
        if (const auto* network = std::get_if<Network>(&rule.pattern)) match = ip && network->contains(*ip);
        if (const auto* host = std::get_if<HostPattern>(&rule.pattern)) match = name_matches(lower_name, *host);
        if (match) return rule.decision;
    }
    return std::nullopt;
}

std::optional<AccessDecision> AccessTable::helo(std::string_view helo) const {
    const auto literal = parse_literal(helo);
    const std::string name = literal ? std::string() : lower(helo);
    for (const auto& rule : helo_) {
        bool match = false;
        if (const auto* ip = std::get_if<IpAddress>(&rule.pattern)) match = literal && *literal == *ip;
        if (const auto* host = std::get_if<HostPattern>(&rule.pattern)) match = !literal && name_matches(name, *host);
        if (match) return rule.decision;
    }
    return std::nullopt;
}

namespace {

template <typename Rules>
std::optional<AccessDecision> first_mail_match(const Rules& rules, std::string_view address) {
    const SplitAddress split = split_address(address);
    for (const auto& rule : rules)
        if (mail_matches(split, std::get<MailPattern>(rule.pattern))) return rule.decision;
    return std::nullopt;
}

}  // namespace

std::optional<AccessDecision> AccessTable::sender(std::string_view address) const {
    return first_mail_match(sender_, address);
}

std::optional<AccessDecision> AccessTable::recipient(std::string_view address) const {
    return first_mail_match(recipient_, address);
}

size_t AccessTable::size() const { return client_.size() + helo_.size() + sender_.size() + recipient_.size(); }

std::string_view access_kind_name(AccessKind kind) {
    switch (kind) {
    case AccessKind::client: return "client";
    case AccessKind::helo: return "helo";
    case AccessKind::sender: return "sender";
    case AccessKind::recipient: return "recipient";
    }
    return "client";
}

std::string_view access_action_name(AccessAction action) {
    switch (action) {
    case AccessAction::ok: return "OK";
    case AccessAction::reject: return "REJECT";
    case AccessAction::defer: return "DEFER";
    }
    return "REJECT";
}

}  // namespace mailroom::smtp
