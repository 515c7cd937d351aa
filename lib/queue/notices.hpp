// Notices about a queued message (SPEC section 8): the failure notice for
// recipients that failed and were not yet reported, and the one delay notice.
// Each is queued as an ordinary entry with the null sender, then a `notified` /
// `warned` record is appended to the entry it reports on, so a crash between the
// two can send a notice twice, never lose one.
// Invariants: a message with the null sender never causes a notice to its sender:
// its failures go to postmaster, and a failure of mail to postmaster is logged and
// dropped (`notified ... -`), so nothing loops.
// Must never: deliver anything (the runner delivers the queued notices next).
#pragma once

#include <ctime>
#include <string>
#include <vector>

#include "mail/message.hpp"
#include "queue/runner_context.hpp"
#include "queue/spool.hpp"

namespace mailroom::mail {

// Queues the failure notice for every failed recipient not yet reported and
// records it; appends the IDs of queued notices to `queued`.
void report_failures(const RunnerContext& context, LockedEntry& entry, const Message& message, std::time_t now,
                     std::vector<std::string>& queued);

// Queues the one delay notice when it is due and some recipient is deferred.
void warn_of_delay(const RunnerContext& context, LockedEntry& entry, const Message& message, std::time_t now,
                   std::vector<std::string>& queued);

}  // namespace mailroom::mail
