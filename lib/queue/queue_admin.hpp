// Queue administration: what `mailctl hold | release | delete | requeue` does to one
// queue entry, and which folders `ALL` covers (docs/mailq.md).
//
// Each action takes the entry's lock, waiting for a runner that delivers it now to
// finish, so an entry is never moved or removed under a delivery; then logs one line
// as Postfix's postsuper does (`ID: placed on hold`, `released from hold`, `removed`,
// `requeued`). A requeued entry gets a `requeued` record (every deferred recipient
// due now) and its due time set to now; telling the daemon is the caller's part.
// Invariants: nothing is changed without the lock, except removing a corrupt entry
// or one in quarantine/, which no runner can lock or deliver.
// Must never: check who the caller is (mailctl does), or stop on one bad ID.
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.hpp"
#include "queue/spool.hpp"

namespace mailroom::mail {

enum class AdminAction { hold, release, remove, requeue };

struct AdminResult {
    enum class Outcome {
        done,       // changed and logged
        unchanged,  // already so (held already, not on hold): `why` says it
        not_found,  // in no folder the action looks in
        failed,     // the spool failed: `why` has the error
    };
    Outcome outcome = Outcome::not_found;
    std::string why;
};

// Where an action looks for an ID, in order: hold/release look in both queue/ and
// hold/ (to say "already"); delete also in quarantine/; requeue in queue/ and hold/
// (a named held entry is released and requeued, as postsuper -r does).
std::vector<QueueFolder> folders_searched(AdminAction action);
// What ALL means: hold → queue/; release → hold/; delete → queue/ and hold/ (not
// quarantine/, as postsuper -d ALL leaves Postfix's corrupt/); requeue → queue/.
std::vector<QueueFolder> folders_for_all(AdminAction action);

AdminResult administer(const Spool& spool, AdminAction action, std::string_view id, std::time_t now,
                       const core::Logger& log);

// "Placed on hold", "Released from hold", "Deleted", "Requeued": postsuper's summary words.
const char* admin_summary_word(AdminAction action);

}  // namespace mailroom::mail
