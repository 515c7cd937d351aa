#include "mail/dsn_text.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <cstdlib>

namespace mailroom::mail {

namespace {

// RFC 5322 section 2.1.1: 998 octets is the hard limit, 78 the polite one.
constexpr size_t hard_line_limit = 998;
constexpr size_t soft_line_limit = 78;
// Room left for a field name and the continuation's leading space.
constexpr size_t word_limit = 900;
constexpr size_t address_limit = 900;

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

// One UTF-8 sequence at text[i]: its code point and length, or length 0 when the
// octets there are not a valid (shortest-form, non-surrogate) sequence.
struct CodePoint {
    char32_t value = 0;
    size_t length = 0;
};

CodePoint decode_utf8(std::string_view text, size_t i) {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(text[i + k]); };
    unsigned char lead = byte(0);
    if (lead < 0x80) return {lead, 1};
    size_t length = lead >= 0xf0 && lead <= 0xf4 ? 4
                    : lead >= 0xe0 && lead < 0xf0 ? 3
                    : lead >= 0xc2 && lead < 0xe0 ? 2
                                                  : 0;
    if (length == 0 || i + length > text.size()) return {};
    char32_t value = lead & (0x7f >> length);
    for (size_t k = 1; k < length; ++k) {
        if ((byte(k) & 0xc0) != 0x80) return {};
        value = (value << 6) | (byte(k) & 0x3f);
    }
    const char32_t shortest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (value < shortest[length] || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return {};
    return {value, length};
}

// Cuts text to at most max_bytes, ending with "..." when something was cut, never
// inside a UTF-8 sequence.
void cut_to(std::string& text, size_t max_bytes) {
    if (text.size() <= max_bytes) return;
    size_t keep = max_bytes > 3 ? max_bytes - 3 : 0;
    while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xc0) == 0x80) --keep;
    text.resize(keep);
    text += "...";
}

}  // namespace

std::string typed_address(std::string_view address) {
    bool printable = true;
    for (unsigned char c : address) printable = printable && !(c & 0x80);
    std::string out;
    if (printable) {
        out = "rfc822; ";
        for (unsigned char c : address)
            if (!is_control(c)) out += static_cast<char>(c);
        if (out.size() > address_limit) out.resize(address_limit);
        return out;
    }
    out = "utf-8; ";
    for (size_t i = 0; i < address.size();) {
        CodePoint cp = decode_utf8(address, i);
        i += cp.length ? cp.length : 1;
        if (cp.length == 0) cp.value = 0xfffd;
        if (cp.value < 0x80 && is_control(static_cast<unsigned char>(cp.value))) continue;
        bool qchar = cp.value > 0x20 && cp.value < 0x7f && cp.value != '+' && cp.value != '=' && cp.value != '\\';
        std::string piece = qchar ? std::string(1, static_cast<char>(cp.value))
                                  : fmt::format("\\x{{{:02X}}}", static_cast<uint32_t>(cp.value));
        // One word of a field line: an address cut short beats a field that breaks.
        if (out.size() + piece.size() > address_limit) break;
        out += piece;
    }
    return out;
}

std::string one_line_ascii(std::string_view text, size_t max_bytes) {
    std::string out;
    out.reserve(std::min(text.size(), max_bytes + 1));
    for (unsigned char c : text) {
        if (out.size() > max_bytes) break;
        if (is_control(c) || c == ' ') {
            if (!out.empty() && out.back() != ' ') out += ' ';
        } else {
            out += c & 0x80 ? '?' : static_cast<char>(c);
        }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    cut_to(out, max_bytes);
    return out;
}

std::string folded_field(std::string_view name, std::string_view value) {
    std::string out(name);
    out += ':';
    size_t line_start = 0;
    bool first_word = true;
    size_t i = 0;
    while (i < value.size()) {
        while (i < value.size() && value[i] == ' ') ++i;
        if (i == value.size()) break;
        size_t end = value.find(' ', i);
        std::string_view word = value.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
        i += word.size();
        while (!word.empty()) {
            std::string_view piece = word.substr(0, word_limit);
            word.remove_prefix(piece.size());
            size_t column = out.size() - line_start;
            // The first word stays on the name's line: a field never starts with a fold.
            if (!first_word && column + 1 + piece.size() > soft_line_limit) {
                out += '\n';
                line_start = out.size();
            }
            out += ' ';
            out += piece;
            first_word = false;
        }
    }
    out += '\n';
    return out;
}

std::string readable_text(std::string_view text, std::string_view indent, size_t max_bytes) {
    std::string clean;
    for (size_t i = 0; i < text.size() && clean.size() <= max_bytes;) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        CodePoint cp = decode_utf8(text, i);
        if (cp.length == 0) {
            clean += '?';
            ++i;
        } else if (c == '\r') {
            ++i;
        } else if (cp.length == 1 && is_control(c) && c != '\n' && c != '\t') {
            clean += '?';
            ++i;
        } else {
            clean.append(text.substr(i, cp.length));
            i += cp.length;
        }
    }
    cut_to(clean, max_bytes);
    while (!clean.empty() && clean.back() == '\n') clean.pop_back();
    std::string out;
    const size_t room = hard_line_limit - indent.size() - 2;
    for (size_t start = 0; start < clean.size();) {
        size_t end = clean.find('\n', start);
        std::string_view line = std::string_view(clean).substr(start, end == std::string::npos ? std::string::npos : end - start);
        start = end == std::string::npos ? clean.size() : end + 1;
        if (line.empty()) out += '\n';
        while (!line.empty()) {
            size_t take = std::min(line.size(), room);
            while (take < line.size() && take > 0 && (static_cast<unsigned char>(line[take]) & 0xc0) == 0x80) --take;
            if (take == 0) take = std::min(line.size(), room);
            out.append(indent).append(line.substr(0, take)) += '\n';
            line.remove_prefix(take);
        }
    }
    return out;
}

bool has_8bit(std::string_view text) {
    for (unsigned char c : text)
        if (c & 0x80) return true;
    return false;
}

}  // namespace mailroom::mail
