// The packets of the password channel: the SMTP sessions process, which runs as an
// unprivileged user, asks the listener's root side (mta/password_service.hpp) "is
// this the password of user U?" over a SOCK_SEQPACKET pair, one packet a question
// and one an answer (net/password_client.hpp asks).
//
//   request  "password1" NUL id NUL user NUL password
//   answer   "password1" NUL id NUL ("ok" | "no" | "tmp")
//
// Fields are separated by NUL, the last one not followed by one. The id is the
// asker's, in decimal (digits only, no sign, no leading zero, at most 2^64 - 1), so
// that answers to several sessions asking at once find their asker. User 1..255
// octets, password 1..1024, neither holding a NUL (smtp/sasl.hpp's bounds).
// Invariants: decoding is strict and total: anything but exactly these forms is
// refused (nullopt), whatever its bytes; encode then decode gives back the values.
// A decoded password is in a string of its own allocation (core::secret_copy), the
// holder's to wipe.
// Must never: let a request's password reach an answer, or a log through a decoder's
// error text (there is none).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/pam_password.hpp"

namespace mailroom::smtp {

// At most this many bytes a request, this many an answer: receive buffers of these
// sizes (and MSG_TRUNC) are enough to tell a packet too long.
constexpr size_t max_password_request = 9 + 1 + 20 + 1 + 255 + 1 + 1024;
constexpr size_t max_password_answer = 9 + 1 + 20 + 1 + 3;

// The arguments are not checked: a request out of bounds is refused by its decoder.
std::string encode_password_request(uint64_t id, std::string_view user, std::string_view password);
struct PasswordRequest {
    uint64_t id;
    std::string user, password;
};
std::optional<PasswordRequest> decode_password_request(std::string_view packet);
// Whether user and password fit the request's bounds.
bool fits_password_request(std::string_view user, std::string_view password);

std::string encode_password_answer(uint64_t id, core::PasswordVerdict verdict);
std::optional<std::pair<uint64_t, core::PasswordVerdict>> decode_password_answer(std::string_view packet);

}  // namespace mailroom::smtp
