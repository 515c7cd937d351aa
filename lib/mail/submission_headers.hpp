// The header fields `sendmail` writes into a submitted message (SPEC 1): the Received:
// trace line it always prepends, and From:, Date: and Message-ID: when the message
// lacks them. Each function returns whole lines ending in LF (the spool's line end).
// Invariant: the result is one header field that a reader parses as such: no CR, LF,
// NUL or other control character of the input gets into it (they become spaces).
// Must never: read the clock or the environment beyond the local time zone (the
// caller passes the time, so a submission has one time and tests are exact).
#pragma once

#include "mail/mail_date.hpp"

#include <sys/types.h>

#include <ctime>
#include <string>
#include <string_view>

namespace mailroom::mail {


// "Received: by HOST (mailroom, from userid UID)\n\tid QUEUEID; DATE\n",
// the form of Postfix's pickup so that log and header analysers read it.
std::string received_header(std::string_view myhostname, uid_t uid, std::string_view queue_id,
                            std::time_t when);

// A display name as RFC 5322 3.2.5 wants it: unchanged when it is atext words (8-bit
// text counts as atext, RFC 6532), else a quoted-string with `"` and `\` escaped.
// Control characters become spaces, outer white space is trimmed; "" when nothing is left.
std::string display_name(std::string_view full_name);

// "From: Full Name <login@myhostname>\n", or "From: login@myhostname\n" without a name.
std::string from_header(std::string_view full_name, std::string_view login,
                        std::string_view myhostname);

// "Date: " + rfc5322_date(when) + "\n".
std::string date_header(std::time_t when);

// "Message-ID: <YYYYMMDDhhmmss.QUEUEID@myhostname>\n", the time in UTC as Postfix's
// cleanup writes it, so that the ID does not depend on the submitter's time zone.
std::string message_id_header(std::time_t when, std::string_view queue_id,
                              std::string_view myhostname);

}  // namespace mailroom::mail
