// Any bytes as an AUTH response (PLAIN, both LOGIN steps), as base64 text, and as a
// packet of the password channel (request and answer): a value or a refusal, never
// a crash. base64 decodes only strict text, which encodes back to itself; what
// decodes encodes back to it. A decoded PLAIN or LOGIN response is within the
// bounds and holds no NUL, and is the same when encoded again; a refusal is one of
// the three SASL refusals (501 5.7.0 cancel, 501 5.5.2 base64, 535 5.7.8), with a
// text that never holds the response's bytes. Password channel packets that decode
// encode back to the very same bytes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "smtp/password_request.hpp"
#include "smtp/sasl.hpp"

using namespace mailroom;
using namespace mailroom::smtp;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

void check_refusal(const Refusal& refusal) {
    const auto& status = refusal.status;
    require(status.is_permanent());
    require((refusal.reply_code == 501 && (status.code() == "5.7.0" || status.code() == "5.5.2")) ||
            (refusal.reply_code == 535 && status.code() == "5.7.8"));
    require(status.text().find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
}

void check_base64(std::string_view text) {
    auto decoded = decode_base64(text);
    if (decoded) {
        require(encode_base64(*decoded) == text);
        size_t pads = 0;
        while (pads < text.size() && text[text.size() - 1 - pads] == '=') ++pads;
        require(pads <= 2 && decoded->size() == text.size() / 4 * 3 - pads);
    }
    auto again = decode_base64(encode_base64(text));
    require(again && *again == text);
}

void check_plain(std::string_view line) {
    auto result = decode_plain_response(line);
    if (auto* refusal = std::get_if<Refusal>(&result)) return check_refusal(*refusal);
    const auto& credentials = std::get<SaslCredentials>(result);
    require(!credentials.user.empty() && credentials.user.size() <= max_sasl_user && !has_nul(credentials.user));
    require(!credentials.password.empty() && credentials.password.size() <= max_sasl_password &&
            !has_nul(credentials.password));
    auto back = decode_plain_response(encode_base64(std::string("\0", 1) + credentials.user + std::string("\0", 1) +
                                                    credentials.password));
    auto* same = std::get_if<SaslCredentials>(&back);
    require(same && same->user == credentials.user && same->password == credentials.password);
}

void check_login(std::string_view line, LoginStep step) {
    auto result = decode_login_response(line, step);
    if (auto* refusal = std::get_if<Refusal>(&result)) return check_refusal(*refusal);
    const auto& text = std::get<std::string>(result);
    require(!text.empty() && !has_nul(text));
    require(text.size() <= (step == LoginStep::user ? max_sasl_user : max_sasl_password));
    require(encode_base64(text) == line);
}

void check_packets(std::string_view packet) {
    if (auto request = decode_password_request(packet)) {
        require(fits_password_request(request->user, request->password));
        require(encode_password_request(request->id, request->user, request->password) == packet);
    }
    if (auto answer = decode_password_answer(packet)) {
        require(encode_password_answer(answer->first, answer->second) == packet);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    check_base64(text);
    check_plain(text);
    check_login(text, LoginStep::user);
    check_login(text, LoginStep::password);
    // The same bytes as what a client might have encoded.
    check_plain(encode_base64(text));
    check_login(encode_base64(text), LoginStep::user);
    check_packets(text);
    return 0;
}
