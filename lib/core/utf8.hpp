// UTF-8 decoding of one sequence, for the places that must tell text a terminal
// shows from bytes it must not get (log lines, mailq's columns).
// Invariant: only shortest-form sequences of valid code points count (no stray
// continuation bytes, overlong forms, surrogates or values past U+10FFFF), so a
// byte that is not accepted here can be escaped without splitting a character.
#pragma once

#include <cstddef>
#include <string_view>

namespace mailroom::core {

// The length of the valid UTF-8 sequence starting at text[pos] (1 for ASCII) and
// its code point, or 0 when the byte there does not start one or it is cut short.
inline size_t utf8_sequence(std::string_view text, size_t pos, char32_t& code_point) {
    auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
    unsigned char lead = byte(pos);
    if (lead < 0x80) {
        code_point = lead;
        return 1;
    }
    size_t length = lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3
                  : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
    if (length == 0 || pos + length > text.size()) return 0;
    char32_t value = lead & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < length; ++i) {
        unsigned char next = byte(pos + i);
        if ((next & 0xC0) != 0x80) return 0;
        value = (value << 6) | (next & 0x3F);
    }
    bool overlong = (length == 3 && value < 0x800) || (length == 4 && value < 0x10000);
    bool surrogate = value >= 0xD800 && value <= 0xDFFF;
    if (overlong || surrogate || value > 0x10FFFF) return 0;
    code_point = value;
    return length;
}

}  // namespace mailroom::core
