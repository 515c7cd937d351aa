// dsn_text: the text forms that delivery notices (bounce.cpp) put into header fields
// and report parts: RFC 5322 dates, RFC 3464 typed addresses, diagnostic texts on one
// line, folded fields, and readable multi-line text for the human part.
//
// Invariants: no function here ever returns a CR, a bare control character or a line
// over 998 octets where a field is produced, whatever the input (a diagnostic may be
// a remote server's reply or a command's output: it is never trusted to keep to the
// syntax). Every output is bounded by the max_bytes given or a fixed cap.
// Never: allocate without bound, read files, or depend on the locale.
#pragma once

#include "mail/mail_date.hpp"

#include <cstddef>
#include <ctime>
#include <string>
#include <string_view>

namespace mailroom::mail {


// RFC 3464 address field value: "rfc822; bob@example.org" when the address is
// printable ASCII, else "utf-8; " with RFC 6533 utf-8-addr-xtext ("\x{F6}" for each
// non-ASCII character, space, '\', '+' and '='), which keeps the report 7-bit.
// Control characters are dropped; the result is at most 900 octets (one field line).
std::string typed_address(std::string_view address);

// Text fit for a one-line field: CR, LF, TAB and other controls become spaces, runs
// of white space one space, octets over 127 '?'; trimmed; cut to max_bytes with "...".
std::string one_line_ascii(std::string_view text, size_t max_bytes);

// "Name: value\n", folded at spaces so that lines stay within 78 columns where the
// words allow it; a word too long for a 998-octet line is split (a space is then
// added to the value on unfolding: better than an unreadable field).
std::string folded_field(std::string_view name, std::string_view value);

// Multi-line text for people: valid UTF-8 and TAB kept, CR dropped, other controls
// and invalid octets '?'; each line prefixed with indent and split before 998 octets;
// cut to max_bytes with "...". The result ends with a LF unless it is empty.
std::string readable_text(std::string_view text, std::string_view indent, size_t max_bytes);

// True when any octet is over 127.
bool has_8bit(std::string_view text);

}  // namespace mailroom::mail
