#include "smtp/password_request.hpp"

#include <algorithm>
#include <charconv>
#include <vector>

#include "smtp/sasl.hpp"

namespace mailroom::smtp {

namespace {

constexpr std::string_view version = "password1";

// The packet's NUL-separated fields when there are exactly `count` of them.
std::optional<std::vector<std::string_view>> fields_of(std::string_view packet, size_t count) {
    std::vector<std::string_view> fields;
    fields.reserve(count);
    for (;;) {
        size_t end = packet.find('\0');
        fields.push_back(packet.substr(0, end));
        if (end == std::string_view::npos) break;
        if (fields.size() == count) return std::nullopt;  // more separators than fields allow
        packet.remove_prefix(end + 1);
    }
    if (fields.size() != count) return std::nullopt;
    return fields;
}

std::optional<uint64_t> id_of(std::string_view text) {
    if (text.empty() || (text.size() > 1 && text[0] == '0')) return std::nullopt;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
    }
    uint64_t id = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return id;
}

std::string_view word_of(core::PasswordVerdict verdict) {
    switch (verdict) {
        case core::PasswordVerdict::accepted: return "ok";
        case core::PasswordVerdict::refused: return "no";
        case core::PasswordVerdict::unavailable: return "tmp";
    }
    return "tmp";
}

}  // namespace

bool fits_password_request(std::string_view user, std::string_view password) {
    return !user.empty() && user.size() <= max_sasl_user && user.find('\0') == std::string_view::npos &&
           !password.empty() && password.size() <= max_sasl_password && password.find('\0') == std::string_view::npos;
}

std::string encode_password_request(uint64_t id, std::string_view user, std::string_view password) {
    const std::string number = std::to_string(id);
    // One allocation, sized first: the packet holds the password, and a reallocation
    // would leave a copy of it behind. The caller wipes the packet once sent.
    std::string packet;
    packet.reserve(std::max<size_t>(version.size() + number.size() + user.size() + password.size() + 3, 32));
    packet += version;
    packet += '\0';
    packet += number;
    packet += '\0';
    packet += user;
    packet += '\0';
    packet += password;
    return packet;
}

std::optional<PasswordRequest> decode_password_request(std::string_view packet) {
    if (packet.size() > max_password_request) return std::nullopt;
    auto fields = fields_of(packet, 4);
    if (!fields || (*fields)[0] != version) return std::nullopt;
    auto id = id_of((*fields)[1]);
    // No NUL can be inside a field here: it would have been a separator.
    if (!id || !fits_password_request((*fields)[2], (*fields)[3])) return std::nullopt;
    return PasswordRequest{*id, std::string((*fields)[2]), core::secret_copy((*fields)[3])};
}

std::string encode_password_answer(uint64_t id, core::PasswordVerdict verdict) {
    std::string packet(version);
    packet += '\0';
    packet += std::to_string(id);
    packet += '\0';
    packet += word_of(verdict);
    return packet;
}

std::optional<std::pair<uint64_t, core::PasswordVerdict>> decode_password_answer(std::string_view packet) {
    if (packet.size() > max_password_answer) return std::nullopt;
    auto fields = fields_of(packet, 3);
    if (!fields || (*fields)[0] != version) return std::nullopt;
    auto id = id_of((*fields)[1]);
    if (!id) return std::nullopt;
    const std::string_view word = (*fields)[2];
    for (auto verdict : {core::PasswordVerdict::accepted, core::PasswordVerdict::refused,
                         core::PasswordVerdict::unavailable}) {
        if (word == word_of(verdict)) return std::make_pair(*id, verdict);
    }
    return std::nullopt;
}

}  // namespace mailroom::smtp
