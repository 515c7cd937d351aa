#include "delivery/leaf.hpp"

#include <fmt/format.h>

#include <vector>

#include "core/log.hpp"
#include "core/users.hpp"

namespace mailroom::mail {

namespace {

constexpr std::string_view leaf_kind_names[] = {"mailbox", "file", "command", "remote", "error"};

bool needs_escape(unsigned char c) { return c <= 0x20 || c >= 0x7f || c == '%' || c == ':'; }

std::string escape_path(std::string_view path) {
    std::string out;
    for (char ch : path) {
        auto c = static_cast<unsigned char>(ch);
        if (needs_escape(c)) out += fmt::format("%{:02X}", c);
        else out += ch;
    }
    return out;
}

std::optional<std::string> unescape_path(std::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        if (i + 2 >= text.size()) return std::nullopt;
        int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

std::optional<unsigned> parse_line_number(std::string_view text) {
    if (text.empty() || text.size() > 9) return std::nullopt;
    unsigned n = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + static_cast<unsigned>(c - '0');
    }
    return n;
}

}  // namespace

std::string_view leaf_kind_name(LeafKind kind) { return leaf_kind_names[static_cast<size_t>(kind)]; }

std::optional<LeafKind> leaf_kind_from_name(std::string_view name) {
    for (size_t i = 0; i < std::size(leaf_kind_names); ++i) {
        if (leaf_kind_names[i] == name) return static_cast<LeafKind>(i);
    }
    return std::nullopt;
}

Status Leaf::error_status() const {
    size_t space = target.find(' ');
    std::string code = target.substr(0, space);
    std::string text = space == std::string::npos ? "" : target.substr(space + 1);
    if (code.size() < 5 || (code[0] != '4' && code[0] != '5')) return Status::perm("5.0.0", target);
    return code[0] == '4' ? Status::temp(code, text) : Status::perm(code, text);
}

std::string Provenance::token() const {
    switch (kind) {
        case Kind::recipient: return "-";
        case Kind::aliases: return fmt::format("aliases:{}:{}", escape_path(path), line);
        case Kind::include: return fmt::format("include:{}:{}", escape_path(path), line);
        case Kind::forward: return fmt::format("forward:{}:{}:{}", escape_path(user), escape_path(path), line);
    }
    return "-";
}

std::optional<Provenance> Provenance::parse(std::string_view token) {
    if (token == "-") return Provenance{};
    std::vector<std::string_view> parts;
    size_t start = 0;
    for (size_t i = 0; i <= token.size(); ++i) {
        if (i == token.size() || token[i] == ':') {
            parts.push_back(token.substr(start, i - start));
            start = i + 1;
        }
    }
    Provenance p;
    size_t expected = 3;
    if (parts[0] == "aliases") p.kind = Kind::aliases;
    else if (parts[0] == "include") p.kind = Kind::include;
    else if (parts[0] == "forward") p.kind = Kind::forward, expected = 4;
    else return std::nullopt;
    if (parts.size() != expected) return std::nullopt;
    auto line = parse_line_number(parts.back());
    auto path = unescape_path(parts[expected - 2]);
    if (!line || !path || path->empty() || (*path)[0] != '/') return std::nullopt;
    p.line = *line;
    p.path = *path;
    if (p.kind == Kind::forward) {
        auto user = unescape_path(parts[1]);
        if (!user || !core::is_plausible_user_name(*user)) return std::nullopt;
        p.user = *user;
    }
    return p;
}

std::string Provenance::shown(std::string_view home) const {
    std::string where = core::escape_line(path, 1024);
    switch (kind) {
        case Kind::recipient: return "the recipient";
        case Kind::aliases: return fmt::format("{}:{}", where, line);
        case Kind::include: return fmt::format(":include:{}:{}", where, line);
        case Kind::forward:
            if (!home.empty() && path.size() > home.size() && path.compare(0, home.size(), home) == 0 &&
                path[home.size()] == '/') {
                where = "~" + user + core::escape_line(path.substr(home.size()), 1024);
            }
            return fmt::format("{}:{}", where, line);
    }
    return where;
}

}  // namespace mailroom::mail
