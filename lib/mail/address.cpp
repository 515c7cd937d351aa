#include "mail/address.hpp"

#include <arpa/inet.h>

#include <string>
#include <utility>

namespace mailroom::mail {

namespace {

// RFC 5321 4.5.3.1: the limits every receiver must accept and may enforce.
constexpr std::size_t max_local_octets = 64;
constexpr std::size_t max_domain_octets = 255;
constexpr std::size_t max_path_octets = 256;  // including the angle brackets
constexpr std::size_t max_label_octets = 63;  // RFC 1035 2.3.4

bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_let_dig(unsigned char c) { return is_alpha(c) || is_digit(c); }
bool is_8bit(unsigned char c) { return c >= 0x80; }

// RFC 5322 3.2.3 atext; with SMTPUTF8 also UTF8-non-ascii (RFC 6531 3.3).
bool is_atext(unsigned char c, bool utf8) {
    if (is_let_dig(c)) return true;
    if (is_8bit(c)) return utf8;
    return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
           std::string_view::npos;
}

// RFC 5321 qtextSMTP: printable ASCII and space except `"` and `\`.
bool is_qtext(unsigned char c, bool utf8) {
    if (is_8bit(c)) return utf8;
    return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

bool is_label_char(unsigned char c, bool utf8) {
    return is_let_dig(c) || c == '-' || (utf8 && is_8bit(c));
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n;
        unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c < 0x80) { ++i; continue; }
        if (c >= 0xC2 && c <= 0xDF) n = 1;
        else if (c == 0xE0) { n = 2; lo = 0xA0; }
        else if (c == 0xED) { n = 2; hi = 0x9F; }
        else if (c >= 0xE1 && c <= 0xEF) n = 2;
        else if (c == 0xF0) { n = 3; lo = 0x90; }
        else if (c == 0xF4) { n = 3; hi = 0x8F; }
        else if (c >= 0xF1 && c <= 0xF3) n = 3;
        else return false;
        if (s.size() - i <= n) return false;  // truncated sequence
        for (std::size_t k = 1; k <= n; ++k) {
            auto b = static_cast<unsigned char>(s[i + k]);
            if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return false;
        }
        i += n + 1;
    }
    return true;
}

bool is_dot_string(std::string_view s) {
    if (s.empty() || s.front() == '.' || s.back() == '.') return false;
    char prev = 0;
    for (char c : s) {
        if (c == '.' ? prev == '.' : !is_atext(static_cast<unsigned char>(c), true)) return false;
        prev = c;
    }
    return true;
}

std::string quoted_char(char c) { return std::string("'") + c + "'"; }

// A recursive-descent scan over one path or mailbox. Each step returns an empty string
// on success and the error text otherwise; parse() turns that into a Result.
class Scanner {
public:
    Scanner(std::string_view text, bool utf8) : s_(text), utf8_(utf8) {}

    bool at_end() const { return pos_ >= s_.size(); }
    char peek() const { return at_end() ? '\0' : s_[pos_]; }
    void advance() { ++pos_; }
    std::size_t pos() const { return pos_; }

    // Dot-string or quoted-string; `local` receives the decoded text.
    std::string local_part(std::string& local) {
        std::size_t start = pos_;
        if (peek() == '"') {
            if (auto e = quoted_string(local); !e.empty()) return e;
        } else {
            if (auto e = dot_string(local); !e.empty()) return e;
        }
        if (pos_ - start > max_local_octets) return "local part longer than 64 octets";
        return {};
    }

    // A host name or an address literal; stops at the first character outside it.
    std::string domain(std::string& out) {
        std::size_t start = pos_;
        if (peek() == '[') {
            if (auto e = address_literal(); !e.empty()) return e;
        } else {
            if (auto e = host_name(); !e.empty()) return e;
        }
        if (pos_ - start > max_domain_octets) return "domain longer than 255 octets";
        out.assign(s_.substr(start, pos_ - start));
        return {};
    }

private:
    std::string quoted_string(std::string& local) {
        advance();  // opening quote
        while (!at_end()) {
            auto c = static_cast<unsigned char>(peek());
            if (c == '"') { advance(); return {}; }
            if (c == '\\') {
                advance();
                if (at_end()) break;
                // quoted-pairSMTP stays ASCII even under SMTPUTF8 (RFC 6531 3.3).
                auto q = static_cast<unsigned char>(peek());
                if (q < 32 || q > 126) return "invalid quoted-pair in local part";
                local += static_cast<char>(q);
            } else if (is_qtext(c, utf8_)) {
                local += static_cast<char>(c);
            } else {
                return "invalid character " + quoted_char(static_cast<char>(c)) + " in local part";
            }
            advance();
        }
        return "unbalanced quotes";
    }

    std::string dot_string(std::string& local) {
        std::size_t start = pos_;
        while (!at_end()) {
            char c = peek();
            if (c == '.') {
                if (pos_ == start) return "local part starts with '.'";
                if (s_[pos_ - 1] == '.') return "local part contains '..'";
            } else if (!is_atext(static_cast<unsigned char>(c), utf8_)) {
                break;
            }
            advance();
        }
        if (pos_ == start) return "missing local part";
        if (s_[pos_ - 1] == '.') return "local part ends with '.'";
        local.assign(s_.substr(start, pos_ - start));
        return {};
    }

    std::string host_name() {
        for (bool first = true;; first = false) {
            std::size_t start = pos_;
            while (!at_end() && is_label_char(static_cast<unsigned char>(peek()), utf8_)) advance();
            std::string_view label = s_.substr(start, pos_ - start);
            if (label.empty()) {
                if (peek() == '.') return first ? "domain starts with '.'" : "domain contains '..'";
                return first ? "missing domain after '@'" : "domain ends with '.'";
            }
            if (label.front() == '-') return "domain label starts with '-'";
            if (label.back() == '-') return "domain label ends with '-'";
            if (label.size() > max_label_octets) return "domain label longer than 63 octets";
            if (peek() != '.') return {};
            advance();
        }
    }

    // `[1.2.3.4]`, `[IPv6:...]` or a general literal `[tag:content]` (RFC 5321 4.1.3).
    std::string address_literal() {
        std::size_t close = s_.find(']', pos_);
        if (close == std::string_view::npos) return "missing ']' in address literal";
        std::string body(s_.substr(pos_ + 1, close - pos_ - 1));
        pos_ = close + 1;
        std::size_t colon = body.find(':');
        if (colon == std::string::npos) {
            in_addr v4;
            if (inet_pton(AF_INET, body.c_str(), &v4) != 1) return "invalid IPv4 address literal";
            return {};
        }
        std::string_view tag = std::string_view(body).substr(0, colon);
        std::string content = body.substr(colon + 1);
        if (iequals_ascii(tag, "IPv6")) {
            in6_addr v6;
            if (inet_pton(AF_INET6, content.c_str(), &v6) != 1) return "invalid IPv6 address literal";
            return {};
        }
        // Standardized-tag is an Ldh-str: ends in a letter or digit.
        if (tag.empty() || !is_let_dig(static_cast<unsigned char>(tag.back()))) {
            return "invalid address literal tag";
        }
        for (char c : tag) {
            if (!is_let_dig(static_cast<unsigned char>(c)) && c != '-') return "invalid address literal tag";
        }
        if (content.empty()) return "empty address literal";
        for (char c : content) {
            auto u = static_cast<unsigned char>(c);  // dcontent: printable except [ \ ]
            if (u < 33 || u > 126 || c == '[' || c == '\\') return "invalid character in address literal";
        }
        return {};
    }

    std::string_view s_;
    std::size_t pos_ = 0;
    bool utf8_;
};

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

core::Unexpected fail(std::string text) { return core::unexpected_input(std::move(text)); }

// What follows a local part or domain that its grammar did not take.
std::string stray(char c, bool in_domain) {
    if (c == '@' && in_domain) return "address contains more than one '@'";
    return "invalid character " + quoted_char(c) + (in_domain ? " in domain" : " in local part");
}

}  // namespace

bool iequals_ascii(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    }
    return true;
}

core::Result<Address> Address::parse(std::string_view text, ParseMode mode, ParseFlags flags) {
    if (mode == ParseMode::bare) text = trim(text);
    // Whole-text checks first: nothing below has to think about controls or bad UTF-8.
    bool eight_bit = false;
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f) return fail("address contains a control character");
        eight_bit = eight_bit || is_8bit(c);
    }
    if (eight_bit && !flags.allow_utf8) return fail("address contains 8-bit characters without SMTPUTF8");
    if (eight_bit && !valid_utf8(text)) return fail("address is not valid UTF-8");

    if (text.empty()) {
        if (mode == ParseMode::bare && flags.allow_null) return Address();
        return fail("empty address");
    }
    bool angle = text.front() == '<';
    if (!angle && (mode == ParseMode::path || text.back() == '>')) return fail("missing '<'");

    Scanner sc(text, flags.allow_utf8);
    if (angle) {
        sc.advance();
        if (sc.peek() == '>') {
            if (text.size() != 2) return fail("unexpected text after '>'");
            if (flags.allow_null) return Address();
            return fail("null address <> not allowed here");
        }
        // Source route `@a,@b:` (RFC 5321 4.1.2): obsolete, accepted and dropped.
        if (sc.peek() == '@') {
            for (;;) {
                sc.advance();  // '@'
                std::string hop;
                if (auto e = sc.domain(hop); !e.empty()) return fail(e);
                if (sc.peek() == ':') { sc.advance(); break; }
                if (sc.peek() != ',') {
                    if (sc.at_end() || sc.peek() == '>') return fail("source route missing ':'");
                    return fail(stray(sc.peek(), true));
                }
                sc.advance();
                if (sc.peek() != '@') return fail("source route hop missing '@'");
            }
        }
    }

    std::string local, domain;
    if (auto e = sc.local_part(local); !e.empty()) return fail(e);
    bool in_domain = false;
    if (sc.peek() == '@') {
        sc.advance();
        in_domain = true;
        if (auto e = sc.domain(domain); !e.empty()) return fail(e);
    }
    if (angle) {
        if (sc.at_end()) return fail("missing '>'");
        if (sc.peek() != '>') return fail(stray(sc.peek(), in_domain));
        sc.advance();
        if (!sc.at_end()) return fail("unexpected text after '>'");
    } else if (!sc.at_end()) {
        return fail(stray(sc.peek(), in_domain));
    }

    if (domain.empty() && local.empty()) return fail("empty local part needs a domain");
    if (domain.empty() && flags.require_domain && !iequals_ascii(local, "postmaster")) {
        return fail("address has no domain");
    }
    std::size_t path_octets = angle ? text.size() : text.size() + 2;
    if (path_octets > max_path_octets) return fail("address longer than 256 octets");
    return Address(std::move(local), std::move(domain));
}

bool Address::needs_smtputf8() const {
    for (char c : local_ + domain_) {
        if (is_8bit(static_cast<unsigned char>(c))) return true;
    }
    return false;
}

std::string Address::str() const {
    if (null_) return {};
    std::string out = quote_local(local_);
    if (!domain_.empty()) out += "@" + domain_;
    return out;
}

bool Address::iequal_domain(std::string_view other) const { return iequals_ascii(domain_, other); }

std::string Address::lowercase_domain() const {
    std::string out = domain_;
    for (char& c : out) c = ascii_lower(c);
    return out;
}

bool Address::same_mailbox(const Address& other) const {
    return null_ == other.null_ && local_ == other.local_ && iequal_domain(other.domain_);
}

std::string Address::quote_local(std::string_view local) {
    if (is_dot_string(local)) return std::string(local);
    std::string out = "\"";
    for (char c : local) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
    return out;
}

LocalParts split_extension(std::string_view local, std::string_view delimiter) {
    LocalParts whole{std::string(local), {}};
    if (delimiter.empty()) return whole;
    // Never split the role names every site must accept (as Postfix's split_addr).
    if (iequals_ascii(local, "postmaster") || iequals_ascii(local, "mailer-daemon")) return whole;
    // With `-` as a delimiter, list names keep working: owner-foo, foo-request.
    if (delimiter.find('-') != std::string_view::npos) {
        if (local.size() >= 6 && iequals_ascii(local.substr(0, 6), "owner-")) return whole;
        if (local.size() > 8 && iequals_ascii(local.substr(local.size() - 8), "-request")) return whole;
    }
    std::size_t at = local.find_first_of(delimiter);
    if (at == std::string_view::npos || at == 0) return whole;
    return LocalParts{std::string(local.substr(0, at)), std::string(local.substr(at + 1))};
}

Status bad_address_status(const core::Error& error, AddressRole role) {
    if (role == AddressRole::sender) {
        return Status::perm("5.1.7", "bad sender address syntax: " + error.message());
    }
    return Status::perm("5.1.3", "bad recipient address syntax: " + error.message());
}

}  // namespace mailroom::mail
