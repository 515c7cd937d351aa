// SASL for the SMTP server's AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN
// mechanisms: base64 (RFC 4648) and the client's responses taken apart into a user
// and a password. No I/O, no state: the session (smtp/session.hpp) runs the
// exchange, the root side checks the password (mta/password_service.hpp).
//
// Each response is the line the client sent, CRLF removed, still in base64. Every
// refusal is a Refusal with the reply to send:
//   "*" (the client cancels, RFC 4954 4)          501 5.7.0 Error: authentication aborted
//   not strict base64                              501 5.5.2 Error: invalid base64 data
//   decoded, but not a user and a password         535 5.7.8 Error: authentication failed: WHY
// The last in Postfix's words for a failed AUTH ("Error: authentication failed"),
// with the reason after a colon as Postfix gives its SASL back end's reason.
// Bounds: a user of 1..255 octets, a password of 1..1024, no NUL in either.
// Invariants: total (any bytes give a value or a refusal, never an exception or a
// crash); a password leaves here only in a string of its own allocation
// (core::secret_copy), and every buffer here that held one is zeroed.
// Must never: put the password, or bytes of it, in a refusal's text.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "smtp/command.hpp"

namespace mailroom::smtp {

constexpr size_t max_sasl_user = 255;
constexpr size_t max_sasl_password = 1024;

std::string encode_base64(std::string_view bytes);
// Strict RFC 4648 base64: the standard alphabet, a length that is a multiple of 4,
// "=" padding exactly where due and nowhere else, pad bits zero (RFC 4648 3.5: one
// text per octet string), no white space, no other characters; nullopt otherwise.
// The empty text decodes to the empty string.
std::optional<std::string> decode_base64(std::string_view text);

struct SaslCredentials {
    std::string user, password;
};

// AUTH PLAIN's response, in base64 as sent (the initial response after
// "AUTH PLAIN ", or the line after the 334; "" for an empty one, which is refused):
// authzid NUL authcid NUL passwd (RFC 4616 2). The authzid must be empty or equal
// to the authcid: nobody logs in as someone else (no proxy authorization).
std::variant<SaslCredentials, Refusal> decode_plain_response(std::string_view line);

// AUTH LOGIN's steps: the server sends 334 VXNlcm5hbWU6 ("Username:") then
// 334 UGFzc3dvcmQ6 ("Password:"); each client line is decoded here, with the same
// refusals. Without the step, the bound is the password's (1..1024 octets): the
// user's tighter one is then the asker's to apply (net::PasswordClient refuses a
// longer user without asking).
std::variant<std::string, Refusal> decode_login_response(std::string_view line);
enum class LoginStep { user, password };
std::variant<std::string, Refusal> decode_login_response(std::string_view line, LoginStep step);

// The refusals, for the session's own use (an overlong response, say).
Refusal sasl_aborted();
Refusal invalid_base64();
Refusal authentication_failed(std::string_view why);

}  // namespace mailroom::smtp
