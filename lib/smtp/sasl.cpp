#include "smtp/sasl.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

#include "core/pam_password.hpp"

namespace mailroom::smtp {

namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr uint8_t not_base64 = 0xFF;

constexpr std::array<uint8_t, 256> make_values() {
    std::array<uint8_t, 256> values{};
    for (auto& v : values) v = not_base64;
    for (uint8_t i = 0; i < 64; ++i) values[static_cast<unsigned char>(alphabet[i])] = i;
    return values;
}
constexpr auto values = make_values();

uint8_t value_of(char c) { return values[static_cast<unsigned char>(c)]; }

// Zeroes a decoded response when it goes out of scope, however the decoding ends.
struct Wiped {
    std::string text;
    ~Wiped() { core::wipe(text); }
};

bool holds_nul(std::string_view text) { return text.find('\0') != std::string_view::npos; }

// The cancel and the base64 step shared by every response; the decoded bytes land
// in `out`. A refusal, or none.
std::optional<Refusal> decode_response(std::string_view line, std::string& out) {
    if (line == "*") return sasl_aborted();
    auto decoded = decode_base64(line);
    if (!decoded) return invalid_base64();
    out = std::move(*decoded);  // a heap buffer moves whole: nothing left behind
    return std::nullopt;
}

}  // namespace

Refusal sasl_aborted() { return {501, mail::Status::perm("5.7.0", "Error: authentication aborted")}; }

Refusal invalid_base64() { return {501, mail::Status::perm("5.5.2", "Error: invalid base64 data")}; }

Refusal authentication_failed(std::string_view why) {
    return {535, mail::Status::perm("5.7.8", "Error: authentication failed: " + std::string(why))};
}

std::string encode_base64(std::string_view bytes) {
    std::string text;
    text.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        uint32_t group = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                         static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
                         static_cast<unsigned char>(bytes[i + 2]);
        text += alphabet[group >> 18];
        text += alphabet[(group >> 12) & 63];
        text += alphabet[(group >> 6) & 63];
        text += alphabet[group & 63];
    }
    size_t left = bytes.size() - i;
    if (left > 0) {
        uint32_t group = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
        if (left == 2) group |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
        text += alphabet[group >> 18];
        text += alphabet[(group >> 12) & 63];
        text += left == 2 ? alphabet[(group >> 6) & 63] : '=';
        text += '=';
    }
    return text;
}

std::optional<std::string> decode_base64(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    // A heap buffer from the start (past the inline buffer's size), sized once: the
    // bytes may be a password, and neither a reallocation nor a later move may leave
    // a copy of them behind.
    std::string bytes;
    bytes.reserve(std::max<size_t>(text.size() / 4 * 3, 32));
    for (size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        // "xx==" and "xxx=" only in the last group.
        const size_t pads = last && text[i + 3] == '=' ? (text[i + 2] == '=' ? 2 : 1) : 0;
        uint32_t group = 0;
        for (size_t j = 0; j < 4 - pads; ++j) {
            uint8_t v = value_of(text[i + j]);
            if (v == not_base64) {
                core::wipe(bytes);
                return std::nullopt;
            }
            group = group << 6 | v;
        }
        group <<= 6 * pads;
        // The bits past the last octet must be zero, or two texts would decode alike.
        if ((pads == 1 && (group & 0xFF) != 0) || (pads == 2 && (group & 0xFFFF) != 0)) {
            core::wipe(bytes);
            return std::nullopt;
        }
        bytes += static_cast<char>(group >> 16);
        if (pads < 2) bytes += static_cast<char>((group >> 8) & 0xFF);
        if (pads < 1) bytes += static_cast<char>(group & 0xFF);
    }
    return bytes;
}

std::variant<SaslCredentials, Refusal> decode_plain_response(std::string_view line) {
    Wiped decoded;
    if (auto refusal = decode_response(line, decoded.text)) return *refusal;
    std::string_view message(decoded.text);
    // authzid NUL authcid NUL passwd: exactly two NULs (the password holds none).
    size_t first = message.find('\0');
    size_t second = first == std::string_view::npos ? first : message.find('\0', first + 1);
    if (second == std::string_view::npos) return authentication_failed("malformed PLAIN response");
    std::string_view authzid = message.substr(0, first);
    std::string_view authcid = message.substr(first + 1, second - first - 1);
    std::string_view password = message.substr(second + 1);
    if (holds_nul(password)) return authentication_failed("malformed PLAIN response");
    if (authcid.empty() || password.empty()) return authentication_failed("a user name and a password are required");
    if (authcid.size() > max_sasl_user) return authentication_failed("user name too long");
    if (password.size() > max_sasl_password) return authentication_failed("password too long");
    if (!authzid.empty() && authzid != authcid) return authentication_failed("authorization identity not allowed");
    return SaslCredentials{std::string(authcid), core::secret_copy(password)};
}

std::variant<std::string, Refusal> decode_login_response(std::string_view line, LoginStep step) {
    Wiped decoded;
    if (auto refusal = decode_response(line, decoded.text)) return *refusal;
    std::string_view text(decoded.text);
    const size_t limit = step == LoginStep::user ? max_sasl_user : max_sasl_password;
    const char* what = step == LoginStep::user ? "user name" : "password";
    if (text.empty()) return authentication_failed(std::string("empty ") + what);
    if (holds_nul(text)) return authentication_failed(std::string("NUL in the ") + what);
    if (text.size() > limit) return authentication_failed(std::string(what) + " too long");
    return core::secret_copy(text);
}

std::variant<std::string, Refusal> decode_login_response(std::string_view line) {
    return decode_login_response(line, LoginStep::password);
}

}  // namespace mailroom::smtp
