#include "queue/queue_runner.hpp"

#include <sysexits.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>

#include "mail/address.hpp"
#include "queue/leaf_delivery.hpp"
#include "queue/notices.hpp"

namespace mailroom::mail {

namespace {

// Mailbox and file writes handed to delivery agents at once, one per user: the
// outcomes of such a batch are recorded together, with one sync.
constexpr size_t writes_in_flight = 8;

std::string seconds_text(double seconds) {
    // Postfix's style: "0.21", "0", "300".
    if (seconds < 0.005) return "0";
    if (seconds >= 10) return fmt::format("{:.0f}", seconds);
    std::string text = fmt::format("{:.2f}", seconds);
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
    return text;
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

// One thing to deliver in this run: a recorded leaf (its index in the state log),
// or an unexpanded recipient that expanded to just itself (its own index).
struct Due {
    size_t index;
    size_t recipient;
    Leaf leaf;
};

Leaf leaf_of(const LeafRecord& record) {
    auto provenance = Provenance::parse(record.provenance);
    // A provenance that does not parse names no file, so it gives no rights: run_as
    // refuses a file or command "from the recipient", and a mailbox needs none.
    return Leaf{record.kind, record.address, record.target, provenance ? *provenance : Provenance{}, record.owner};
}

LeafRecord record_of(const Leaf& leaf, size_t recipient) {
    LeafRecord record;
    record.recipient = recipient;
    record.kind = leaf.kind;
    record.address = leaf.address;
    record.provenance = leaf.provenance.token();
    record.owner = leaf.owner;
    record.target = leaf.target;
    return record;
}

bool is_due(const RecipientState& state, std::time_t now, bool force) {
    if (state.phase == RecipientPhase::delivered || state.phase == RecipientPhase::failed) return false;
    return force || state.phase != RecipientPhase::deferred || state.next_try <= now;
}

// Expanded to nothing but itself: nothing worth recording (it is expanded again,
// the same way, at every attempt until it is done).
bool is_plain(const Expansion& expansion) {
    return expansion.leaves.size() == 1 && expansion.leaves[0].provenance.kind == Provenance::Kind::recipient;
}

void log_outcome(const RunnerContext& context, const LockedEntry& entry, const Leaf& leaf,
                 const std::string& original, const Attempt& attempt, const Status& status, double started,
                 double finished) {
    const auto& envelope = entry.envelope();
    double arrival = static_cast<double>(envelope.arrival_micros) / 1e6;
    std::string orig = iequals_ascii(leaf.address, original) ? "" : ", orig_to=<" + original + ">";
    // Remote leaves through the SMTP transport log as Postfix's smtp, relay=none included.
    const core::Logger& log = leaf.kind == LeafKind::remote && context.remote_transport ? context.logs.smtp
                              : attempt.relay == "local"                                  ? context.logs.local
                              : attempt.relay == "none"                                   ? context.logs.qmgr
                                                                                          : context.logs.lmtp;
    log.info(fmt::format("{}: to=<{}>{}, relay={}, delay={}, delays={}/0/0/{}, {}", entry.id(), leaf.address, orig,
                         attempt.relay, seconds_text(finished - arrival), seconds_text(started - arrival),
                         seconds_text(finished - started), status.to_log()));
}

// A temporary failure that lasted past maximal_queue_lifetime becomes permanent.
Status final_status(const RunnerContext& context, const LockedEntry& entry, Status status, std::time_t now,
                    bool& expired_logged) {
    const auto& envelope = entry.envelope();
    if (!status.is_temporary() || !is_expired(envelope.arrival(), now, context.settings)) return status;
    if (!expired_logged) {
        context.logs.qmgr.info(fmt::format("{}: from=<{}>, status=expired, returned to sender", entry.id(),
                                           envelope.sender));
        expired_logged = true;
    }
    return Status::perm("5.4.7", "delivery time expired; last error: " + status.code() + " " + status.text());
}

// Appends outcomes in one write and makes them durable before the next step (unless
// the entry is removed at once); false (logged, run failed) when they could not be
// recorded. `last`: the run's last outcomes, the only ones that can leave the entry
// done (the state is copied for them alone).
bool record(const RunnerContext& context, LockedEntry& entry, const std::vector<StateRecord>& outcomes,
            EntryRun& run, bool last) {
    if (outcomes.empty()) return true;
    // The last outcomes of an entry that is removed right after need no sync of their
    // own (LockedEntry::Durability): that is one sync per message fewer.
    auto durability = LockedEntry::Durability::synced;
    if (last) {
        EntryState after = entry.state();
        for (const auto& outcome : outcomes) apply_state_record(after, outcome);
        if (after.all_done()) durability = LockedEntry::Durability::removed_next;
    }
    auto appended = entry.append(outcomes, durability);
    if (appended) return true;
    context.logs.qmgr.error(fmt::format("{}: cannot record {} outcome(s): {}", entry.id(), outcomes.size(),
                                        appended.error().message()));
    run.outcome = EntryRun::Outcome::failed;
    return false;
}

StateRecord outcome_record(const RunnerContext& context, size_t index, const Status& status, std::time_t now,
                           const RecipientState& state) {
    return record_for(index, status, now, next_retry(now, state.attempts + 1, context.settings));
}

// Phase 1: each recipient not yet expanded (or requeued with leaves not all done)
// is expanded, and its leaves recorded in one append before any is delivered. A
// recipient that is just itself is not recorded but delivered as it is; one whose
// expansion cannot finish now is deferred whole. Returns false when the spool failed.
bool expand_due(const RunnerContext& context, LockedEntry& entry, std::time_t now, bool force,
                std::vector<Due>& due, EntryRun& run) {
    const Envelope& envelope = entry.envelope();
    bool expired_logged = false;
    for (size_t i = 0; i < envelope.recipients.size(); ++i) {
        const EntryState& state = entry.state();
        bool expanded = state.expanded(i);
        bool again = expanded && !state.recipient_done(i) && state.expansions[i].requeued;
        if (expanded && !again) continue;
        if (!expanded && !is_due(state.recipients[i], now, force)) continue;
        Expansion expansion = expand_recipient(envelope.recipients[i], context.expansion, *context.sources, context.rights);
        for (const auto& warning : expansion.warnings) {
            context.logs.local.warning(fmt::format("{}: to=<{}>: {}", entry.id(), envelope.recipients[i], warning));
        }
        if (expansion.temporary && expansion.needs_more_rights) {
            context.logs.qmgr.info(fmt::format("{}: to=<{}>: left for the daemon: {}", entry.id(), envelope.recipients[i],
                                               expansion.temporary->text()));
            run.exit_code = EX_TEMPFAIL;
            continue;
        }
        if (expansion.temporary) {
            if (expanded) continue;  // the recorded leaves stay as they are
            Status status = final_status(context, entry, *expansion.temporary, now, expired_logged);
            Leaf self{LeafKind::mailbox, envelope.recipients[i], "", {}, ""};
            double at = context.clock->now_seconds();
            run.exit_code = worst_exit_code(run.exit_code, status.to_sysexit());
            bool recorded =
                record(context, entry, {outcome_record(context, i, status, now, state.recipients[i])}, run, false);
            log_outcome(context, entry, self, envelope.recipients[i], Attempt{Attempt::Kind::tried, status, "none", ""},
                        status, at, at);
            if (!recorded) return false;
            continue;
        }
        if (!expanded && is_plain(expansion)) {
            due.push_back(Due{i, i, std::move(expansion.leaves[0])});
            continue;
        }
        // A requeued recipient: what was delivered is not written (nor delivered) again.
        std::vector<LeafRecord> records;
        for (const Leaf& leaf : expansion.leaves) {
            bool delivered = false;
            if (expanded) {
                for (const LeafState* old : state.current_leaves(i)) {
                    delivered |= old->state.phase == RecipientPhase::delivered && old->leaf.kind == leaf.kind &&
                                 old->leaf.target == leaf.target && old->leaf.address == leaf.address;
                }
            }
            if (!delivered) records.push_back(record_of(leaf, i));
        }
        if (auto r = entry.append_expansion(i, now, std::move(records)); !r) {
            context.logs.qmgr.error(fmt::format("{}: cannot record the expansion of <{}>: {}", entry.id(),
                                                envelope.recipients[i], r.error().message()));
            run.outcome = EntryRun::Outcome::failed;
            return false;
        }
    }
    // Every current leaf that is due, in file order.
    const EntryState& state = entry.state();
    for (size_t i = 0; i < envelope.recipients.size(); ++i) {
        if (!state.expanded(i)) continue;
        for (const LeafState* leaf : state.current_leaves(i)) {
            if (is_due(leaf->state, now, force)) {
                due.push_back(Due{leaf->leaf.index, i, leaf_of(leaf->leaf)});
            }
        }
    }
    std::sort(due.begin(), due.end(), [](const Due& a, const Due& b) { return a.index < b.index; });
    return true;
}

// A batch: due leaves delivered together and recorded with one append. Remote
// leaves (with a transport attached) go in batches of their own, one destination
// and at most the transport's recipient limit each: one SMTP transaction.
struct Batch {
    std::vector<size_t> items;  // indexes into the due list
    bool remote = false;
    std::string domain;  // remote: the first recipient's domain
};

std::string_view domain_of(std::string_view address) {
    size_t at = address.rfind('@');
    return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

// The remote leaf's address: its target (the expander's), else the address itself.
const std::string& remote_address(const Leaf& leaf) { return leaf.target.empty() ? leaf.address : leaf.target; }

std::vector<Batch> plan_batches(const RunnerContext& context, const std::vector<Due>& due) {
    std::vector<Batch> batches;
    std::vector<Batch> remote;        // open remote batches, by destination in order of first appearance
    std::vector<std::string> keys;    // their destinations
    Batch local;
    for (size_t i = 0; i < due.size(); ++i) {
        if (context.remote_transport && due[i].leaf.kind == LeafKind::remote) {
            // Domains are case-insensitive: FAR.example and far.example are one destination.
            std::string domain(domain_of(remote_address(due[i].leaf)));
            for (auto& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string key = context.remote_transport->destination(domain);
            size_t k = std::find(keys.begin(), keys.end(), key) - keys.begin();
            if (k == keys.size()) {
                keys.push_back(key);
                remote.push_back(Batch{{}, true, domain});
            }
            remote[k].items.push_back(i);
            if (remote[k].items.size() >= std::max<size_t>(1, context.remote_transport->recipient_limit())) {
                batches.push_back(std::move(remote[k]));
                remote[k] = Batch{{}, true, domain};
            }
            continue;
        }
        local.items.push_back(i);
        if (local.items.size() == writes_in_flight) {
            batches.push_back(std::move(local));
            local = Batch{};
        }
    }
    if (!local.items.empty()) batches.push_back(std::move(local));
    for (auto& batch : remote) {
        if (!batch.items.empty()) batches.push_back(std::move(batch));
    }
    // Local batches first, in due order, then the remote ones.
    std::stable_partition(batches.begin(), batches.end(), [](const Batch& b) { return !b.remote; });
    return batches;
}

// Phase 2: the due leaves in batches (plan_batches). A local batch's leaves are
// all begun (their users' delivery agents write at once), then finished; a remote
// batch is one call to the remote transport. A batch's outcomes are recorded in
// one append with one sync, then logged. After a crash only the leaves of one
// batch can be delivered twice (docs/spool.md "Crash windows").
bool deliver_due(const RunnerContext& context, LockedEntry& entry, const Message& message, std::time_t now,
                 const std::vector<Due>& due, EntryRun& run) {
    const Envelope& envelope = entry.envelope();
    bool expired_logged = false;
    struct Tried {
        const Due* item;
        Attempt attempt;
        double started, finished;
    };
    const std::vector<Batch> batches = plan_batches(context, due);
    for (size_t b = 0; b < batches.size(); ++b) {
        const Batch& batch = batches[b];
        std::vector<BegunAttempt> begun;
        std::vector<double> started;
        // local_transport = lmtp:...: the batch's mailbox leaves make one transaction;
        // a remote batch is one transaction of the remote transport.
        std::vector<size_t> by_transport;
        std::vector<TransportRecipient> transport_recipients;
        for (size_t i : batch.items) {
            started.push_back(context.clock->now_seconds());
            if (batch.remote) {
                by_transport.push_back(begun.size());
                transport_recipients.push_back({remote_address(due[i].leaf), envelope.dsn(due[i].recipient)});
                begun.push_back(Attempt{});
                continue;
            }
            if (context.mailbox_transport_required && !context.mailbox_transport &&
                due[i].leaf.kind == LeafKind::mailbox) {
                begun.push_back(Attempt{Attempt::Kind::tried,
                                        Status::temp("4.3.5", "local_transport is set but this program cannot use it"),
                                        "none", ""});
                continue;
            }
            if (context.mailbox_transport && due[i].leaf.kind == LeafKind::mailbox) {
                by_transport.push_back(begun.size());
                transport_recipients.push_back({due[i].leaf.address, envelope.dsn(due[i].recipient)});
                begun.push_back(Attempt{});
                continue;
            }
            begun.push_back(begin_leaf(context, message, envelope, due[i].leaf, envelope.recipients[due[i].recipient]));
        }
        if (!by_transport.empty()) {
            TransportResult sent =
                batch.remote ? context.remote_transport->deliver(message, envelope, batch.domain, transport_recipients)
                             : context.mailbox_transport->deliver(message, envelope, transport_recipients);
            for (size_t j = 0; j < by_transport.size(); ++j) {
                Status status = j < sent.statuses.size()
                                    ? sent.statuses[j]
                                    : Status::temp("4.3.0", batch.remote ? "no outcome from the SMTP transport"
                                                                         : "no outcome from the LMTP server");
                std::string relay = j < sent.relays.size() && !sent.relays[j].empty() ? sent.relays[j] : sent.relay;
                if (relay.empty()) relay = "none";
                begun[by_transport[j]] = Attempt{Attempt::Kind::tried, std::move(status), std::move(relay), ""};
            }
        }
        std::vector<Tried> tried;
        for (size_t k = 0; k < begun.size(); ++k) {
            Attempt attempt = finish_leaf(std::move(begun[k]));
            tried.push_back(Tried{&due[batch.items[k]], std::move(attempt), started[k], context.clock->now_seconds()});
        }

        std::vector<StateRecord> outcomes;
        std::vector<Status> statuses;
        for (auto& one : tried) {
            if (one.attempt.kind == Attempt::Kind::skipped) {
                context.logs.qmgr.info(fmt::format("{}: to=<{}>: left for the daemon: {}", entry.id(),
                                                   one.item->leaf.address, one.attempt.status.text()));
                run.exit_code = EX_TEMPFAIL;
                statuses.push_back(one.attempt.status);
                continue;
            }
            Status status = final_status(context, entry, one.attempt.status, now, expired_logged);
            run.exit_code = worst_exit_code(run.exit_code, status.to_sysexit());
            const RecipientState* state = entry.state().target_state(one.item->index);
            outcomes.push_back(outcome_record(context, one.item->index, status, now, state ? *state : RecipientState{}));
            statuses.push_back(std::move(status));
        }
        // Recorded, then logged: a kill between the two leaves no "sent" line for a
        // delivery the next runner makes again (test_queue_crash.py counts them).
        bool recorded = record(context, entry, outcomes, run, b + 1 == batches.size());
        for (size_t k = 0; k < tried.size(); ++k) {
            if (tried[k].attempt.kind == Attempt::Kind::skipped) continue;
            const Due& item = *tried[k].item;
            log_outcome(context, entry, item.leaf, envelope.recipients[item.recipient], tried[k].attempt, statuses[k],
                        tried[k].started, tried[k].finished);
        }
        if (!recorded) return false;
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
    std::vector<Due> due;
    if (!expand_due(context, *entry, now, force, due, run)) return run;
    if (!deliver_due(context, *entry, *message, now, due, run)) return run;
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
