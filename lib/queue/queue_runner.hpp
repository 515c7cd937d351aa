// Queue runner: one delivery attempt of one queued message, the unit of work of
// `mta -q`, `mta -q -I`, the daemon's workers and `sendmail -odi`.
//
// One run goes in phases: lock the entry (skipping it when another runner has
// it); deliver each recipient that is due, recording every outcome in the entry
// before the next step; queue the failure notice (or the one delay notice) for
// the sender (notices.hpp); then remove the entry once every recipient is done,
// or make it due at its earliest next try. A recipient is done when
// delivered, or failed and its sender told (or nobody to tell).
// Invariants: no recipient is tried without the entry's lock; an outcome is on
// disk before the next recipient is tried; a message with the null sender never
// causes a notice to its sender, and a failed notice to postmaster is dropped.
// Must never: throw, stop on one bad entry, or deliver as root a target that
// belongs to someone else.
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "queue/runner_context.hpp"

namespace mailroom::mail {

struct EntryRun {
    enum class Outcome {
        finished,     // every recipient done: the entry is removed
        waiting,      // some recipient deferred (or left for a runner with more rights)
        busy,         // another runner holds the lock
        gone,         // not in queue/ (delivered meanwhile, held, deleted)
        quarantined,  // unreadable: moved to quarantine/
        failed,       // the spool itself failed (logged): retried by the next scan
    };
    Outcome outcome = Outcome::gone;
    std::vector<std::string> notices;  // notices queued by this run, to be delivered next
    int exit_code = 0;                 // worst sysexits code of the attempts (sendmail -odi)
};

// force: try every undone recipient, due or not (mta -q, -I, sendmail -odi).
// The time is the context's clock.
EntryRun run_entry(const RunnerContext& context, std::string_view id, bool force);

// The entry, then at once the notices its run queued (and theirs: at most two
// levels, as a notice's own failure goes to postmaster and no further).
EntryRun run_entry_and_notices(const RunnerContext& context, std::string_view id, bool force);

struct QueueRunSummary {
    size_t seen = 0, finished = 0, waiting = 0, busy = 0, quarantined = 0, failed = 0;
};
// Every entry of queue/ once (mta -q: force, due or not), in directory order,
// without holding the listing in memory.
core::Result<QueueRunSummary> run_queue_once(const RunnerContext& context, bool force);

}  // namespace mailroom::mail
