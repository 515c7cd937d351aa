#include "queue/notices.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "mail/address.hpp"
#include "mail/bounce.hpp"

namespace mailroom::mail {

namespace {

bool is_postmaster(const std::string& address) {
    return iequals_ascii(std::string_view(address).substr(0, address.rfind('@')), "postmaster");
}

// A remote SMTP server's reply as the SMTP transport words it, "host NAME[ADDR] said:
// 550 5.1.1 text (in reply to RCPT TO command)": reported as Remote-MTA NAME and the
// reply itself as the Diagnostic-Code (RFC 3464 "smtp; 550 5.1.1 text"), as Postfix's
// DSNs do. Any other text (local reasons, LMTP servers, a refused connection) as it is.
ReportedRecipient reported_recipient(std::string address, std::string original, Status status, std::time_t last_try) {
    const std::string& text = status.text();
    const size_t said = text.find(" said: ");
    const size_t bracket = text.find('[');
    if (text.starts_with("host ") && said != std::string::npos && bracket != std::string::npos && bracket < said &&
        text.find(' ', 5) == said && said + 10 < text.size() &&
        std::isdigit(static_cast<unsigned char>(text[said + 7])) && text[said + 10] == ' ') {
        std::string host = text.substr(5, bracket - 5);
        std::string reply = text.substr(said + 7);
        if (size_t in_reply = reply.rfind(" (in reply to "); in_reply != std::string::npos && reply.back() == ')')
            reply.resize(in_reply);
        Status replied = status.is_permanent() ? Status::perm(status.code(), reply)
                         : status.is_temporary() ? Status::temp(status.code(), reply)
                                                 : status;
        return ReportedRecipient{std::move(address), std::move(original), std::move(replied), std::move(host),
                                 last_try};
    }
    return ReportedRecipient{std::move(address), std::move(original), std::move(status), "", last_try};
}

// A recipient or a leaf a notice may report on.
struct Reported {
    size_t index;          // in the state log: a recipient's or a leaf's
    std::string address;   // the final recipient
    std::string original;  // the envelope recipient, when it differs
    std::string owner;     // where the notice goes instead of the sender ("" = the sender)
    const RecipientState* state;
};

// Every unexpanded recipient and every current leaf in the given phase whose
// sender (or owner) was not yet told of it.
std::vector<Reported> in_phase(const LockedEntry& entry, RecipientPhase phase) {
    std::vector<Reported> found;
    const auto& envelope = entry.envelope();
    const EntryState& state = entry.state();
    for (size_t i = 0; i < envelope.recipients.size(); ++i) {
        if (!state.expanded(i)) {
            const RecipientState& own = state.recipients[i];
            if (own.phase == phase && !own.notified) found.push_back({i, envelope.recipients[i], "", "", &own});
            continue;
        }
        for (const LeafState* leaf : state.current_leaves(i)) {
            if (leaf->state.phase != phase || leaf->state.notified) continue;
            const std::string& original = envelope.recipients[i];
            found.push_back({leaf->leaf.index, leaf->leaf.address,
                             iequals_ascii(leaf->leaf.address, original) ? "" : original, leaf->leaf.owner, &leaf->state});
        }
    }
    return found;
}

// Queues a notice about `reported`; returns its queue ID.
core::Result<std::string> queue_notice(const RunnerContext& context, const LockedEntry& entry, const Message& message,
                                       NoticeKind kind, const std::vector<Reported>& reported, const std::string& to,
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
    for (const Reported& item : reported) {
        const RecipientState& state = *item.state;
        Status status = kind == NoticeKind::failure
                            ? Status::perm(state.code[0] == '5' ? state.code : "5.0.0", state.text)
                            : Status::temp(state.code[0] == '4' ? state.code : "4.0.0", state.text);
        request.recipients.push_back(reported_recipient(item.address, item.original, status, state.last_try));
    }
    auto notice = compose_notice(request, message);
    if (!notice) return core::unexpected(notice.error());
    if (auto r = writer->write(*notice); !r) return core::unexpected(r.error());
    Envelope notice_envelope;
    notice_envelope.sender = "";  // SPEC 8: notices have the null sender, so they never bounce back
    notice_envelope.recipients = {to};
    notice_envelope.submitter_uid = context.rights.uid();
    notice_envelope.arrival_micros = context.clock->now_micros();
    if (auto r = writer->commit(notice_envelope); !r) return core::unexpected(r.error());
    return writer->id();
}

// One failure notice for the failures that go to one place: the sender, postmaster
// when the sender is null, an owner-NAME of the list they came through; to nobody
// when that was postmaster already.
void report_to(const RunnerContext& context, LockedEntry& entry, const Message& message, std::time_t now,
               const std::string& owner, const std::vector<Reported>& failed, std::vector<std::string>& queued) {
    const auto& envelope = entry.envelope();
    StateRecord notified;
    notified.kind = StateRecord::Kind::notified;
    for (const Reported& item : failed) notified.indexes.push_back(item.index);
    notified.time = now;
    bool to_postmaster = owner.empty() && envelope.sender.empty();
    bool drop = to_postmaster && std::all_of(failed.begin(), failed.end(), [&](const Reported& item) {
                    return is_postmaster(item.address);
                });
    if (drop) {
        notified.notice_id = "-";
        context.logs.bounce.warning(fmt::format("{}: postmaster non-delivery notification dropped: the notice itself "
                                                "was undeliverable", entry.id()));
    } else {
        std::string to = !owner.empty() ? owner : to_postmaster ? "postmaster@" + context.settings.myhostname : envelope.sender;
        auto notice = queue_notice(context, entry, message, NoticeKind::failure, failed, to, now);
        if (!notice) {
            context.logs.bounce.error(fmt::format("{}: cannot queue the non-delivery notification: {}", entry.id(),
                                                  notice.error().message()));
            return;  // tried again on the next run: the recipients stay unreported
        }
        notified.notice_id = *notice;
        queued.push_back(*notice);
        context.logs.bounce.info(fmt::format("{}: {} non-delivery notification: {}", entry.id(),
                                             !owner.empty() ? "owner " + owner : to_postmaster ? "postmaster" : "sender",
                                             *notice));
    }
    if (auto r = entry.append({notified}); !r) {
        context.logs.qmgr.error(fmt::format("{}: cannot record the notification: {}", entry.id(), r.error().message()));
    }
}

}  // namespace

void report_failures(const RunnerContext& context, LockedEntry& entry, const Message& message, std::time_t now,
                     std::vector<std::string>& queued) {
    std::vector<Reported> failed = in_phase(entry, RecipientPhase::failed);
    // One notice per place the failures go, in the order they were first met.
    std::vector<std::string> owners;
    for (const Reported& item : failed) {
        if (std::find(owners.begin(), owners.end(), item.owner) == owners.end()) owners.push_back(item.owner);
    }
    for (const std::string& owner : owners) {
        std::vector<Reported> group;
        for (const Reported& item : failed) {
            if (item.owner == owner) group.push_back(item);
        }
        report_to(context, entry, message, now, owner, group, queued);
    }
}

void warn_of_delay(const RunnerContext& context, LockedEntry& entry, const Message& message, std::time_t now,
                   std::vector<std::string>& queued) {
    const auto& envelope = entry.envelope();
    if (entry.state().warned || envelope.sender.empty() || !delay_warning_due(envelope.arrival(), now, context.settings)) {
        return;
    }
    std::vector<Reported> deferred = in_phase(entry, RecipientPhase::deferred);
    if (deferred.empty()) return;
    auto notice = queue_notice(context, entry, message, NoticeKind::delay, deferred, envelope.sender, now);
    if (!notice) {
        context.logs.bounce.error(fmt::format("{}: cannot queue the delay notification: {}", entry.id(),
                                              notice.error().message()));
        return;
    }
    queued.push_back(*notice);
    context.logs.bounce.info(fmt::format("{}: sender delay notification: {}", entry.id(), *notice));
    StateRecord warned;
    warned.kind = StateRecord::Kind::warned;
    warned.time = now;
    warned.notice_id = *notice;
    if (auto r = entry.append({warned}); !r) {
        context.logs.qmgr.error(fmt::format("{}: cannot record the delay notification: {}", entry.id(), r.error().message()));
    }
}

}  // namespace mailroom::mail
