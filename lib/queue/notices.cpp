#include "queue/notices.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "mail/address.hpp"
#include "mail/bounce.hpp"

namespace mailroom::mail {

namespace {

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
    notice_envelope.submitter_uid = context.rights.uid();
    notice_envelope.arrival_micros = context.clock->now_micros();
    if (auto r = writer->commit(notice_envelope); !r) return core::unexpected(r.error());
    return writer->id();
}

// Failure notice for every failed recipient not yet reported: to the sender, to
// postmaster when the sender is null, to nobody when that was postmaster already.
}  // namespace

void report_failures(const RunnerContext& context, LockedEntry& entry, const Message& message, std::time_t now,
                     std::vector<std::string>& queued) {
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
        queued.push_back(*notice);
        context.logs.bounce.info(fmt::format("{}: {} non-delivery notification: {}", entry.id(),
                                             to_postmaster ? "postmaster" : "sender", *notice));
    }
    if (auto r = entry.append({notified}); !r) {
        context.logs.qmgr.error(fmt::format("{}: cannot record the notification: {}", entry.id(), r.error().message()));
    }
}

void warn_of_delay(const RunnerContext& context, LockedEntry& entry, const Message& message, std::time_t now,
                   std::vector<std::string>& queued) {
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
