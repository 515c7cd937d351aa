// What a finished delivery child came to, as a Status (SPEC 4, as Postfix's pipe(8)
// and local(8) judge commands): exit 0 delivered; 75 (EX_TEMPFAIL) or 71 (EX_OSERR)
// deferred; any other code, a signal or the timeout bounced, carrying the start of
// the output. Output that begins with an enhanced status code ("4.2.1 try later",
// "5.1.2 nope", "2.0.0 ok") decides instead of the exit code. A message that could
// not be fed whole is never a success.
//
// Status texts are one line (line breaks and tabs folded into spaces; the log and the
// queue escape what else is there); the output as written goes to the bounce apart.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/subprocess.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

// The output on one line: CR, LF and TAB runs become one space, ends trimmed.
std::string one_line(std::string_view text);

// The Status an output starting with "X.Y.Z" (X 2, 4 or 5; Y and Z 1-3 digits) and
// white space or its end announces, its text the rest on one line; else none.
std::optional<Status> status_from_output(std::string_view output);

// The Status of a command's run: `command` as named in texts, `timeout` the limit it had.
Status command_status(const core::SubprocessResult& result, std::string_view command, std::chrono::seconds timeout);

}  // namespace mailroom::mail
