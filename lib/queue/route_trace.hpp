// Route trace: where `mailctl trace ADDRESS` (and `sendmail -bv`) says mail for an
// address would go, step by step, delivering nothing and changing nothing.
//
//   bob+news@host.example
//     local address bob+news@host.example: user bob, extension news
//     -> mailbox /var/mail/bob (mbox), written as bob (uid 1001)
//
// Today the steps are the route the queue runner takes (route_recipient: local user
// or remote) and the final target (mailbox_location). Alias lines (file:line),
// :include: files and .forward steps come with the aliases issue, as more indented
// lines before the targets they lead to.
// Must never: deliver, write, or print a byte of the address that is not printable.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/users.hpp"
#include "queue/queue_policy.hpp"

namespace mailroom::mail {

struct Trace {
    std::vector<std::string> lines;  // the address, then one indented line per step
    // 0 deliverable; 65 bad address; 67 unknown user; 75 would be deferred (remote
    // delivery not configured, user lookup failed).
    int exit_code = 0;
};

Trace trace_address(std::string_view address, const QueueSettings& settings, const core::UserDb& users);

}  // namespace mailroom::mail
