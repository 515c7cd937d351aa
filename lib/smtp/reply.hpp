// Replies as they go on the wire (RFC 5321 4.2): "CODE SP X.Y.Z SP text CRLF", or
// for a multi-line reply "CODE-text" lines and a last "CODE SP text". With
// ENHANCEDSTATUSCODES (RFC 2034) every reply but the greeting and the EHLO/LHLO
// list carries its enhanced code.
//
// Texts come from anywhere (a Status from a mailbox writer, a client's argument
// echoed back): a reply line never holds a CR, LF or other control byte, and never
// runs past 512 octets — such bytes become '?', and a long text is cut.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mail/status.hpp"

namespace mailroom::smtp {

// "250 2.1.0 text\r\n" appended to out; `enhanced` may be empty (no code).
void append_reply(std::string& out, int code, std::string_view enhanced, std::string_view text);
// A Status as a reply: its own reply number (Status::to_reply_code), code and text.
void append_reply(std::string& out, const mail::Status& status);
// Several lines under one code: "250-first", ..., "250 last".
void append_multiline_reply(std::string& out, int code, const std::vector<std::string>& lines);

// The text made safe for one reply line (control bytes '?', at most `limit` octets).
std::string reply_text(std::string_view text, size_t limit = 400);

}  // namespace mailroom::smtp
