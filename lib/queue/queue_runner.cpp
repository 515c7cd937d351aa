#include "queue/queue_runner.hpp"

#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>

#include "mail/address.hpp"
#include "mail/bounce.hpp"

namespace mailroom::mail {

namespace {

double real_now() {
    struct timeval tv {};
    ::gettimeofday(&tv, nullptr);
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

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
    auto user = context.users.find(route.user);
    if (!user) return {Attempt::Kind::tried, Status::temp("4.3.0", "user lookup failed: " + user.error().message())};
    if (!*user) return {Attempt::Kind::tried, Status::perm("5.1.1", "unknown user: \"" + route.user + "\"")};
    if (::geteuid() != 0 && (*user)->uid != ::geteuid()) {
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

bool is_postmaster(const std::string& address) {
    return iequals_ascii(std::string_view(address).substr(0, address.rfind('@')), "postmaster");
}

// Queues a notice about `indexes` of the entry; returns its queue ID.
core::Result<std::string> queue_notice(const RunnerContext& context, const LockedEntry& entry, const Message& message,
                                       NoticeKind kind, const std::vector<size_t>& indexes, const std::string& to,
                                       std::time_t now) {
    const auto& envelope = entry.envelope();
    auto writer = QueueWriter::begin(context.spool);
    if (!writer) return core::unexpected(writer.error());
    NoticeRequest request;
    request.kind = kind;
    request.reporting_host = context.settings.myhostname;
    request.queue_id = entry.id();
    request.original_sender = to;
    request.notice_queue_id = writer->id();
    request.arrival = envelope.arrival();
    request.now = now;
    request.retry_until = envelope.arrival() + static_cast<std::time_t>(context.settings.maximal_queue_lifetime.count());
    if (envelope.sender.empty()) {
        request.postmaster_note = "This report goes to the postmaster because the message had no sender to return it to.";
    }
    for (size_t index : indexes) {
        const auto& state = entry.state().recipients[index];
        Status status = kind == NoticeKind::failure
                            ? Status::perm(state.code[0] == '5' ? state.code : "5.0.0", state.text)
                            : Status::temp(state.code[0] == '4' ? state.code : "4.0.0", state.text);
        ReportedRecipient recipient{envelope.recipients[index], "", status, "", state.last_try};
        request.recipients.push_back(std::move(recipient));
    }
    auto notice = compose_notice(request, message);
    if (!notice) return core::unexpected(notice.error());
    if (auto r = writer->write(*notice); !r) return core::unexpected(r.error());
    Envelope notice_envelope;
    notice_envelope.sender = "";  // SPEC 8: notices have the null sender, so they never bounce back
    notice_envelope.recipients = {to};
    notice_envelope.submitter_uid = ::geteuid();
    notice_envelope.arrival_micros = static_cast<uint64_t>(real_now() * 1e6);
    if (auto r = writer->commit(notice_envelope); !r) return core::unexpected(r.error());
    return writer->id();
}

// Failure notice for every failed recipient not yet reported: to the sender, to
// postmaster when the sender is null, to nobody when that was postmaster already.
void report_failures(const RunnerContext& context, LockedEntry& entry, const Message& message, std::time_t now,
                     EntryRun& run) {
    std::vector<size_t> failed;
    const auto& recipients = entry.state().recipients;
    for (size_t i = 0; i < recipients.size(); ++i) {
        if (recipients[i].phase == RecipientPhase::failed && !recipients[i].notified) failed.push_back(i);
    }
    if (failed.empty()) return;
    const auto& envelope = entry.envelope();
    StateRecord notified;
    notified.kind = StateRecord::Kind::notified;
    notified.indexes = failed;
    notified.time = now;
    bool to_postmaster = envelope.sender.empty();
    bool drop = to_postmaster && std::all_of(failed.begin(), failed.end(), [&](size_t i) {
                    return is_postmaster(envelope.recipients[i]);
                });
    if (drop) {
        notified.notice_id = "-";
        context.logs.bounce.warning(fmt::format("{}: postmaster non-delivery notification dropped: the notice itself "
                                                "was undeliverable", entry.id()));
    } else {
        std::string to = to_postmaster ? "postmaster@" + context.settings.myhostname : envelope.sender;
        auto notice = queue_notice(context, entry, message, NoticeKind::failure, failed, to, now);
        if (!notice) {
            context.logs.bounce.error(fmt::format("{}: cannot queue the non-delivery notification: {}", entry.id(),
                                                  notice.error().message()));
            return;  // tried again on the next run: the recipients stay unreported
        }
        notified.notice_id = *notice;
        run.notices.push_back(*notice);
        context.logs.bounce.info(fmt::format("{}: {} non-delivery notification: {}", entry.id(),
                                             to_postmaster ? "postmaster" : "sender", *notice));
    }
    if (auto r = entry.append({notified}); !r) {
        context.logs.qmgr.error(fmt::format("{}: cannot record the notification: {}", entry.id(), r.error().message()));
    }
}

void warn_of_delay(const RunnerContext& context, LockedEntry& entry, const Message& message, std::time_t now,
                   EntryRun& run) {
    const auto& envelope = entry.envelope();
    if (entry.state().warned || envelope.sender.empty() || !delay_warning_due(envelope.arrival(), now, context.settings)) {
        return;
    }
    std::vector<size_t> deferred;
    const auto& recipients = entry.state().recipients;
    for (size_t i = 0; i < recipients.size(); ++i) {
        if (recipients[i].phase == RecipientPhase::deferred) deferred.push_back(i);
    }
    if (deferred.empty()) return;
    auto notice = queue_notice(context, entry, message, NoticeKind::delay, deferred, envelope.sender, now);
    if (!notice) {
        context.logs.bounce.error(fmt::format("{}: cannot queue the delay notification: {}", entry.id(),
                                              notice.error().message()));
        return;
    }
    run.notices.push_back(*notice);
    context.logs.bounce.info(fmt::format("{}: sender delay notification: {}", entry.id(), *notice));
    StateRecord warned;
    warned.kind = StateRecord::Kind::warned;
    warned.time = now;
    warned.notice_id = *notice;
    if (auto r = entry.append({warned}); !r) {
        context.logs.qmgr.error(fmt::format("{}: cannot record the delay notification: {}", entry.id(), r.error().message()));
    }
}

}  // namespace

EntryRun run_entry(const RunnerContext& context, std::string_view id, std::time_t now, bool force) {
    EntryRun run;
    const auto& logs = context.logs;
    auto attempt = LockedEntry::lock(context.spool, QueueFolder::queue, id);
    if (!attempt) {
        if (attempt.error().code.value() == EBADMSG) {
            // A corrupt entry, or something else planted under a queue ID: moved out of
            // queue/ once, so it is reported once, not at every run.
            auto moved = context.spool.quarantine(id, QueueFolder::queue);
            std::string note = !moved       ? " (and it could not be moved: " + moved.error().message() + ")"
                               : *moved != id ? " (as quarantine/" + *moved + ")"
                                              : "";
            logs.qmgr.warning(fmt::format("{}: quarantined: {}{}", id, attempt.error().context, note));
            run.outcome = moved ? EntryRun::Outcome::quarantined : EntryRun::Outcome::failed;
            return run;
        }
        logs.qmgr.error(fmt::format("{}: {}", id, attempt.error().message()));
        run.outcome = EntryRun::Outcome::failed;
        run.exit_code = EX_TEMPFAIL;
        return run;
    }
    if (attempt->outcome != LockAttempt::Outcome::locked) {
        run.outcome = attempt->outcome == LockAttempt::Outcome::busy ? EntryRun::Outcome::busy : EntryRun::Outcome::gone;
        return run;
    }
    LockedEntry& entry = *attempt->entry;
    const Envelope& envelope = entry.envelope();
    auto message = entry.message();
    if (!message) {
        logs.qmgr.error(fmt::format("{}: cannot read the message: {}", id, message.error().message()));
        run.outcome = EntryRun::Outcome::failed;
        run.exit_code = EX_TEMPFAIL;
        return run;
    }
    logs.qmgr.info(fmt::format("{}: from=<{}>, size={}, nrcpt={} (queue active)", id, envelope.sender,
                               entry.message_size(), envelope.recipients.size()));
    double arrival = static_cast<double>(envelope.arrival_micros) / 1e6;
    bool expired_logged = false;
    for (size_t i = 0; i < envelope.recipients.size(); ++i) {
        const RecipientState& state = entry.state().recipients[i];
        if (state.phase == RecipientPhase::delivered || state.phase == RecipientPhase::failed) continue;
        if (!force && state.phase == RecipientPhase::deferred && state.next_try > now) continue;
        double started = real_now();
        Attempt result = deliver_one(context, *message, envelope, envelope.recipients[i]);
        double finished = real_now();
        if (result.kind == Attempt::Kind::skipped) {
            logs.qmgr.info(fmt::format("{}: to=<{}>: left for the daemon: {}", id, envelope.recipients[i],
                                       result.status.text()));
            run.exit_code = EX_TEMPFAIL;
            continue;
        }
        Status status = result.status;
        if (status.is_temporary() && is_expired(envelope.arrival(), now, context.settings)) {
            status = Status::perm("5.4.7", "delivery time expired; last error: " + status.code() + " " + status.text());
            if (!expired_logged) {
                logs.qmgr.info(fmt::format("{}: from=<{}>, status=expired, returned to sender", id, envelope.sender));
                expired_logged = true;
            }
        }
        auto record = record_for(i, status, now, next_retry(now, state.attempts + 1, context.settings));
        // The outcome reaches the disk before the next recipient is tried: after a
        // crash, only this one recipient can be delivered twice.
        auto appended = entry.append({record});
        const core::Logger& log = result.relay == "local" ? logs.local : logs.qmgr;
        log.info(fmt::format("{}: to=<{}>, relay={}, delay={}, delays={}/0/0/{}, {}", id, envelope.recipients[i],
                             result.relay, seconds_text(finished - arrival), seconds_text(started - arrival),
                             seconds_text(finished - started), status.to_log()));
        run.exit_code = worst_exit_code(run.exit_code, status.to_sysexit());
        if (!appended) {
            logs.qmgr.error(fmt::format("{}: cannot record the outcome for <{}>: {}", id, envelope.recipients[i],
                                        appended.error().message()));
            run.outcome = EntryRun::Outcome::failed;
            return run;
        }
    }
    report_failures(context, entry, *message, now, run);
    warn_of_delay(context, entry, *message, now, run);
    if (entry.state().all_done()) {
        if (auto r = entry.remove(); !r) {
            logs.qmgr.error(fmt::format("{}: {}", id, r.error().message()));
            run.outcome = EntryRun::Outcome::failed;
            return run;
        }
        logs.qmgr.info(fmt::format("{}: removed", id));
        run.outcome = EntryRun::Outcome::finished;
        return run;
    }
    std::time_t due = entry.state().next_try();
    if (auto r = entry.set_due(due ? due : now); !r) {
        logs.qmgr.warning(fmt::format("{}: {}", id, r.error().message()));
    }
    run.outcome = EntryRun::Outcome::waiting;
    return run;
}

EntryRun run_entry_and_notices(const RunnerContext& context, std::string_view id, bool force) {
    EntryRun run = run_entry(context, id, std::time(nullptr), force);
    std::vector<std::string> pending = run.notices;
    for (size_t i = 0; i < pending.size() && i < 64; ++i) {
        EntryRun notice = run_entry(context, pending[i], std::time(nullptr), true);
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
