#include "queue/queue_runner.hpp"

#include <sysexits.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>

#include "mail/address.hpp"
#include "queue/notices.hpp"

namespace mailroom::mail {

namespace {

std::string seconds_text(double seconds) {
    // Postfix's style: "0.21", "0", "300".
    if (seconds < 0.005) return "0";
    if (seconds >= 10) return fmt::format("{:.0f}", seconds);
    std::string text = fmt::format("{:.2f}", seconds);
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
    return text;
}

// What one attempt at one recipient came to, and whether it was tried at all.
struct Attempt {
    enum class Kind { tried, skipped };
    Kind kind = Kind::tried;
    Status status = Status::ok();
    std::string relay = "local";
};

Attempt deliver_one(const RunnerContext& context, const Message& message, const Envelope& envelope,
                    const std::string& recipient) {
    const auto& settings = context.settings;
    Route route = route_recipient(recipient, settings);
    if (route.kind == Route::Kind::invalid) return {Attempt::Kind::tried, route.invalid, "none"};
    if (route.kind == Route::Kind::remote) {
        return {Attempt::Kind::tried, Status::temp("4.3.5", "remote delivery not configured"), "none"};
    }
    auto user = context.users->find(route.user);
    if (!user) return {Attempt::Kind::tried, Status::temp("4.3.0", "user lookup failed: " + user.error().message())};
    if (!*user) return {Attempt::Kind::tried, Status::perm("5.1.1", "unknown user: \"" + route.user + "\"")};
    if (!context.rights.may_deliver_as((*user)->uid)) {
        // Only a runner started as root may write another user's mailbox: leave the
        // recipient untouched (no attempt counted) for the daemon.
        return {Attempt::Kind::skipped, Status::temp("4.3.0", "delivery to " + route.user + " needs a runner started as root")};
    }
    LocalDelivery delivery;
    delivery.user = **user;
    delivery.recipient = route.address;
    delivery.sender = envelope.sender;
    delivery.mailbox = mailbox_location(settings.local, **user);
    delivery.arrival = envelope.arrival();
    // The writer's own text goes to the log: "delivered to mailbox", "delivered to
    // maildir", or a repair it made first (docs/mbox.md).
    return {Attempt::Kind::tried, deliver_local(message, delivery, settings.local, Isolation::child_process), "local"};
}

StateRecord record_for(size_t index, const Status& status, std::time_t now, std::time_t next_try) {
    StateRecord record;
    record.kind = status.is_ok() ? StateRecord::Kind::delivered
                  : status.is_temporary() ? StateRecord::Kind::deferred
                                          : StateRecord::Kind::failed;
    record.indexes = {index};
    record.time = now;
    record.next_try = status.is_temporary() ? next_try : 0;
    record.code = status.code();
    record.text = status.text();
    return record;
}

// Locks the entry for this run; on any other answer says so in `run` (and moves a
// corrupt entry to quarantine/ once, so it is reported once, not at every run).
std::optional<LockedEntry> lock_for_run(const RunnerContext& context, std::string_view id, EntryRun& run) {
    const auto& logs = context.logs;
    auto attempt = LockedEntry::lock(context.spool, QueueFolder::queue, id);
    if (!attempt) {
        if (attempt.error().code.value() == EBADMSG) {
            auto moved = context.spool.quarantine(id, QueueFolder::queue);
            std::string note = !moved       ? " (and it could not be moved: " + moved.error().message() + ")"
                               : *moved != id ? " (as quarantine/" + *moved + ")"
                                              : "";
            logs.qmgr.warning(fmt::format("{}: quarantined: {}{}", id, attempt.error().context, note));
            run.outcome = moved ? EntryRun::Outcome::quarantined : EntryRun::Outcome::failed;
            return std::nullopt;
        }
        logs.qmgr.error(fmt::format("{}: {}", id, attempt.error().message()));
        run.outcome = EntryRun::Outcome::failed;
        run.exit_code = EX_TEMPFAIL;
        return std::nullopt;
    }
    if (attempt->outcome != LockAttempt::Outcome::locked) {
        run.outcome = attempt->outcome == LockAttempt::Outcome::busy ? EntryRun::Outcome::busy : EntryRun::Outcome::gone;
        return std::nullopt;
    }
    return std::move(*attempt->entry);
}

// Tries each due recipient and records its outcome before the next one is tried.
// False when an outcome could not be recorded: the run stops there.
bool deliver_due(const RunnerContext& context, LockedEntry& entry, const Message& message, std::time_t now,
                 bool force, EntryRun& run) {
    const auto& logs = context.logs;
    const Envelope& envelope = entry.envelope();
    double arrival = static_cast<double>(envelope.arrival_micros) / 1e6;
    bool expired_logged = false;
    for (size_t i = 0; i < envelope.recipients.size(); ++i) {
        const RecipientState& state = entry.state().recipients[i];
        if (state.phase == RecipientPhase::delivered || state.phase == RecipientPhase::failed) continue;
        if (!force && state.phase == RecipientPhase::deferred && state.next_try > now) continue;
        double started = context.clock->now_seconds();
        Attempt result = deliver_one(context, message, envelope, envelope.recipients[i]);
        double finished = context.clock->now_seconds();
        if (result.kind == Attempt::Kind::skipped) {
            logs.qmgr.info(fmt::format("{}: to=<{}>: left for the daemon: {}", entry.id(), envelope.recipients[i],
                                       result.status.text()));
            run.exit_code = EX_TEMPFAIL;
            continue;
        }
        Status status = result.status;
        if (status.is_temporary() && is_expired(envelope.arrival(), now, context.settings)) {
            status = Status::perm("5.4.7", "delivery time expired; last error: " + status.code() + " " + status.text());
            if (!expired_logged) {
                logs.qmgr.info(fmt::format("{}: from=<{}>, status=expired, returned to sender", entry.id(),
                                           envelope.sender));
                expired_logged = true;
            }
        }
        auto record = record_for(i, status, now, next_retry(now, state.attempts + 1, context.settings));
        // The outcome reaches the disk before the next recipient is tried: after a
        // crash, only this one recipient can be delivered twice.
        auto appended = entry.append({record});
        const core::Logger& log = result.relay == "local" ? logs.local : logs.qmgr;
        log.info(fmt::format("{}: to=<{}>, relay={}, delay={}, delays={}/0/0/{}, {}", entry.id(),
                             envelope.recipients[i], result.relay, seconds_text(finished - arrival),
                             seconds_text(started - arrival), seconds_text(finished - started), status.to_log()));
        run.exit_code = worst_exit_code(run.exit_code, status.to_sysexit());
        if (!appended) {
            logs.qmgr.error(fmt::format("{}: cannot record the outcome for <{}>: {}", entry.id(),
                                        envelope.recipients[i], appended.error().message()));
            run.outcome = EntryRun::Outcome::failed;
            return false;
        }
    }
    return true;
}

// Removes the entry when every recipient is done, else makes it due at the
// earliest next try.
void finish(const RunnerContext& context, LockedEntry& entry, std::time_t now, EntryRun& run) {
    const auto& logs = context.logs;
    if (entry.state().all_done()) {
        if (auto r = entry.remove(); !r) {
            logs.qmgr.error(fmt::format("{}: {}", entry.id(), r.error().message()));
            run.outcome = EntryRun::Outcome::failed;
            return;
        }
        logs.qmgr.info(fmt::format("{}: removed", entry.id()));
        run.outcome = EntryRun::Outcome::finished;
        return;
    }
    std::time_t due = entry.state().next_try();
    if (auto r = entry.set_due(due ? due : now); !r) {
        logs.qmgr.warning(fmt::format("{}: {}", entry.id(), r.error().message()));
    }
    run.outcome = EntryRun::Outcome::waiting;
}

}  // namespace

EntryRun run_entry(const RunnerContext& context, std::string_view id, bool force) {
    EntryRun run;
    auto entry = lock_for_run(context, id, run);
    if (!entry) return run;
    auto message = entry->message();
    if (!message) {
        context.logs.qmgr.error(fmt::format("{}: cannot read the message: {}", id, message.error().message()));
        run.outcome = EntryRun::Outcome::failed;
        run.exit_code = EX_TEMPFAIL;
        return run;
    }
    const Envelope& envelope = entry->envelope();
    context.logs.qmgr.info(fmt::format("{}: from=<{}>, size={}, nrcpt={} (queue active)", id, envelope.sender,
                                       entry->message_size(), envelope.recipients.size()));
    std::time_t now = context.clock->now();
    if (!deliver_due(context, *entry, *message, now, force, run)) return run;
    report_failures(context, *entry, *message, now, run.notices);
    warn_of_delay(context, *entry, *message, now, run.notices);
    finish(context, *entry, now, run);
    return run;
}

EntryRun run_entry_and_notices(const RunnerContext& context, std::string_view id, bool force) {
    EntryRun run = run_entry(context, id, force);
    std::vector<std::string> pending = run.notices;
    for (size_t i = 0; i < pending.size() && i < 64; ++i) {
        EntryRun notice = run_entry(context, pending[i], true);
        pending.insert(pending.end(), notice.notices.begin(), notice.notices.end());
    }
    return run;
}

core::Result<QueueRunSummary> run_queue_once(const RunnerContext& context, bool force) {
    QueueRunSummary summary;
    auto scanned = context.spool.for_each_entry(QueueFolder::queue, [&](const std::string& id) {
        ++summary.seen;
        switch (run_entry_and_notices(context, id, force).outcome) {
        case EntryRun::Outcome::finished: ++summary.finished; break;
        case EntryRun::Outcome::waiting: ++summary.waiting; break;
        case EntryRun::Outcome::busy: ++summary.busy; break;
        case EntryRun::Outcome::quarantined: ++summary.quarantined; break;
        case EntryRun::Outcome::failed: ++summary.failed; break;
        case EntryRun::Outcome::gone: break;
        }
        return true;
    });
    if (!scanned) return core::unexpected(scanned.error());
    return summary;
}

}  // namespace mailroom::mail
