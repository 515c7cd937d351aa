// Command lines of SMTP and LMTP (RFC 5321 4.1, RFC 2033, and the parameters of
// RFC 1870 SIZE, 6152 8BITMIME, 6531 SMTPUTF8, 3461 DSN, 3030 CHUNKING): one line,
// its CRLF already removed, into a verb and its argument; MAIL FROM and RCPT TO
// arguments into a path and their parameters. No I/O, no state: the session
// (smtp/session.hpp) decides what a command means at its point of the dialogue.
//
// Every refusal is a mail::Status whose reply code is the one RFC 5321 names for it
// (to_reply_code() of the Status need not be: reply_code carries it): 500 5.5.2 for a
// line that is not a command, 501 5.5.4 for a bad argument, 555 5.5.4 for an unknown
// or malformed MAIL/RCPT parameter, 553 5.1.3 / 5.1.7 for a path that does not parse.
// Total: any bytes in (NUL, 8-bit, control characters, any length) give a value or a
// refusal, never a crash or an exception.
#pragma once

#include <cstdint>
#include <optional>
#include <variant>
#include <string>
#include <string_view>
#include <vector>

#include "mail/address.hpp"
#include "mail/status.hpp"
#include "queue/queue_entry.hpp"

namespace mailroom::smtp {

enum class Verb {
    helo, ehlo, lhlo, mail, rcpt, data, bdat, rset, noop, quit, vrfy, expn, help,
    starttls, auth, etrn,
    unknown,  // any other word: 500 5.5.1 from the session
};

// RFC 5321 4.5.3.1.4 and 4.5.3.1.7: a command line is at most 512 octets with its
// CRLF; MAIL and RCPT may take 4096 with their ESMTP parameters (SPEC 7).
constexpr size_t command_line_limit = 512;
constexpr size_t parameter_line_limit = 4096;

// A refusal with the reply number to send (500, 501, 504, 553, 555 ...).
struct Refusal {
    int reply_code;
    mail::Status status;
};

struct CommandLine {
    Verb verb = Verb::unknown;
    std::string name;      // the verb as sent, upper-cased ("MAIL"), for texts
    std::string argument;  // after the verb and one or more spaces; trailing spaces removed
};

// `line` without its CRLF. A verb is matched without regard to case. Refused
// (500 5.5.2): an empty line, a NUL or any control character other than TAB, a line
// longer than the limit for its verb (counting the CRLF). An unknown verb is not
// refused here: it is Verb::unknown with its name.
std::variant<CommandLine, Refusal> parse_command_line(std::string_view line);

enum class BodyType { unspecified, seven_bit, eight_bit_mime };

struct MailFrom {
    mail::Address sender;  // the null path when "<>"
    std::optional<uint64_t> size;  // SIZE=
    BodyType body = BodyType::unspecified;  // BODY=7BIT / 8BITMIME (BINARYMIME: 555, not offered)
    bool smtputf8 = false;                  // SMTPUTF8
    mail::DsnReturn ret = mail::DsnReturn::unspecified;  // RET=FULL / HDRS
    std::string envid;     // ENVID=, xtext as given (checked with mail::is_valid_envid)
    std::string auth;      // AUTH=, xtext as given ("<>" kept as is); the session decides
};

struct RcptTo {
    mail::Address recipient;
    mail::RecipientDsn dsn;  // NOTIFY= and ORCPT= (as given, checked with mail::is_valid_orcpt)
};

struct PathRules {
    bool allow_utf8 = false;  // the session offers SMTPUTF8 and MAIL carried it
    // Postfix's smtpd_strict_rfc821_envelopes = no: "MAIL FROM: <a@b>" (space after the
    // colon) and "MAIL FROM:a@b" (no brackets) are accepted. Off: brackets required.
    bool lenient = true;
};

// The argument of MAIL ("FROM:<path> params"). Each parameter at most once; names
// without regard to case; an unknown one is refused 555 5.5.4 naming it.
std::variant<MailFrom, Refusal> parse_mail_from(std::string_view argument, const PathRules& rules);
// The argument of RCPT ("TO:<path> params"). The null path is refused (553 5.1.3),
// `<Postmaster>` without a domain is accepted (RFC 5321 4.1.1.3).
std::variant<RcptTo, Refusal> parse_rcpt_to(std::string_view argument, const PathRules& rules);

// BDAT's argument: "SIZE [LAST]" with SIZE a decimal of at most 19 digits.
struct BdatChunk {
    uint64_t size = 0;
    bool last = false;
};
std::variant<BdatChunk, Refusal> parse_bdat(std::string_view argument);

// RFC 3461 4 xtext: "+XX" (upper-case hex) stands for one octet; other octets are
// "!" through "~" except "+" and "=". Nothing when the text is not xtext.
std::optional<std::string> decode_xtext(std::string_view xtext);
std::string encode_xtext(std::string_view text);

}  // namespace mailroom::smtp
