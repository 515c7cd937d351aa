#include "core/json_text.hpp"

#include <fmt/format.h>

#include "core/utf8.hpp"

namespace mailroom::core {

std::string json_quote(std::string_view text) {
    std::string out = "\"";
    out.reserve(text.size() + 2);
    for (size_t pos = 0; pos < text.size();) {
        char32_t code_point = 0;
        size_t length = utf8_sequence(text, pos, code_point);
        if (length == 0) {
            out += "\\ufffd";
            ++pos;
            continue;
        }
        switch (code_point) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (code_point < 0x20 || code_point == 0x7F) out += fmt::format("\\u{:04x}", static_cast<unsigned>(code_point));
            else out.append(text.substr(pos, length));
        }
        pos += length;
    }
    out += '"';
    return out;
}

}  // namespace mailroom::core
