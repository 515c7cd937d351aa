#include "queue/queue_admin.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace mailroom::mail {

namespace {

AdminResult done() { return {AdminResult::Outcome::done, {}}; }
AdminResult unchanged(std::string why) { return {AdminResult::Outcome::unchanged, std::move(why)}; }
AdminResult failed(const core::Error& error) { return {AdminResult::Outcome::failed, error.message()}; }

// An entry nobody can lock (corrupt, or quarantined) is unlinked without the lock:
// no runner delivers from it, so there is nothing to wait for.
std::optional<AdminResult> unlink_unlocked(const Spool& spool, QueueFolder folder, std::string_view id,
                                           const core::Logger& log) {
    std::string path = spool.entry_path(folder, id);
    if (::unlink(path.c_str()) != 0) {
        if (errno == ENOENT) return std::nullopt;
        return failed(core::errno_error("remove " + path));
    }
    log.info(fmt::format("{}: removed", id));
    return done();
}

AdminResult act_on(LockedEntry& entry, AdminAction action, std::time_t now, const core::Logger& log) {
    const std::string& id = entry.id();
    bool held = entry.folder() == QueueFolder::hold;
    switch (action) {
    case AdminAction::hold:
        if (held) return unchanged("already on hold");
        if (auto moved = entry.move_to(QueueFolder::hold); !moved) return failed(moved.error());
        log.info(fmt::format("{}: placed on hold", id));
        return done();
    case AdminAction::release:
        if (!held) return unchanged("not on hold");
        if (auto moved = entry.move_to(QueueFolder::queue); !moved) return failed(moved.error());
        log.info(fmt::format("{}: released from hold", id));
        return done();
    case AdminAction::remove:
        if (auto removed = entry.remove(); !removed) return failed(removed.error());
        log.info(fmt::format("{}: removed", id));
        return done();
    case AdminAction::requeue: {
        StateRecord record;
        record.kind = StateRecord::Kind::requeued;
        record.time = now;
        if (auto appended = entry.append({record}); !appended) return failed(appended.error());
        // Due now: the daemon's next scan (or the flush the caller sends) takes it.
        if (auto due = entry.set_due(now); !due) return failed(due.error());
        if (held) {
            if (auto moved = entry.move_to(QueueFolder::queue); !moved) return failed(moved.error());
        }
        log.info(fmt::format("{}: requeued", id));
        return done();
    }
    }
    return unchanged("unknown action");
}

}  // namespace

std::vector<QueueFolder> folders_searched(AdminAction action) {
    switch (action) {
    case AdminAction::hold: return {QueueFolder::queue, QueueFolder::hold};
    case AdminAction::release: return {QueueFolder::hold, QueueFolder::queue};
    case AdminAction::remove: return {QueueFolder::queue, QueueFolder::hold, QueueFolder::quarantine};
    case AdminAction::requeue: return {QueueFolder::queue, QueueFolder::hold};
    }
    return {};
}

std::vector<QueueFolder> folders_for_all(AdminAction action) {
    switch (action) {
    case AdminAction::hold: return {QueueFolder::queue};
    case AdminAction::release: return {QueueFolder::hold};
    case AdminAction::remove: return {QueueFolder::queue, QueueFolder::hold};
    case AdminAction::requeue: return {QueueFolder::queue};
    }
    return {};
}

const char* admin_summary_word(AdminAction action) {
    switch (action) {
    case AdminAction::hold: return "Placed on hold";
    case AdminAction::release: return "Released from hold";
    case AdminAction::remove: return "Deleted";
    case AdminAction::requeue: return "Requeued";
    }
    return "";
}

AdminResult administer(const Spool& spool, AdminAction action, std::string_view id, std::time_t now,
                       const core::Logger& log) {
    if (!is_valid_queue_id(id)) return {AdminResult::Outcome::not_found, {}};
    for (QueueFolder folder : folders_searched(action)) {
        if (folder == QueueFolder::quarantine) {
            if (auto result = unlink_unlocked(spool, folder, id, log)) return *result;
            continue;
        }
        // wait: a runner delivering it now finishes first; then the entry may be gone.
        auto attempt = LockedEntry::lock(spool, folder, id, true);
        if (!attempt) {
            if (attempt.error().errno_value() != EBADMSG) return failed(attempt.error());
            if (action == AdminAction::remove) {
                if (auto result = unlink_unlocked(spool, folder, id, log)) return *result;
                continue;
            }
            return {AdminResult::Outcome::failed,
                    attempt.error().context + " (the next queue run moves it to quarantine)"};
        }
        if (attempt->outcome != LockAttempt::Outcome::locked) continue;
        return act_on(*attempt->entry, action, now, log);
    }
    return {AdminResult::Outcome::not_found, {}};
}

}  // namespace mailroom::mail
