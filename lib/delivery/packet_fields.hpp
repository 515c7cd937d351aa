// The field codec of the delivery processes' packets (write requests, agent
// requests): NUL-terminated fields, numbers in decimal with nothing around them.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::mail {

inline void append_field(std::string& packet, std::string_view field) {
    packet += field;
    packet += '\0';
}

// The fields of `packet`; none when a field lacks its NUL.
inline std::optional<std::vector<std::string_view>> split_fields(std::string_view packet) {
    std::vector<std::string_view> fields;
    while (!packet.empty()) {
        auto end = packet.find('\0');
        if (end == std::string_view::npos) return std::nullopt;
        fields.push_back(packet.substr(0, end));
        packet.remove_prefix(end + 1);
    }
    return fields;
}

template <typename Number>
bool parse_number(std::string_view text, Number& out) {
    if (text.empty()) return false;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    return error == std::errc() && end == text.data() + text.size();
}

}  // namespace mailroom::mail
