// Spool: the queue folders under spool_dir and every operation on them that
// must be atomic or locked (docs/spool.md). The only code that creates, moves or
// removes queue files.
//
//   tmp/         submissions being written (a crash leaves them; swept after a day)
//   queue/       committed entries waiting for delivery; a file's mtime is the
//                time it is next due, so a scan needs only a stat per entry
//   hold/        entries held by mailctl hold (not scheduled)
//   quarantine/  entries that could not be read (torn, garbage, unknown version)
//   trigger      FIFO: a submission writes "ID\n" to wake a running daemon
//
// Invariants: an entry appears in queue/ whole or not at all (QueueWriter);
// state changes are appended under the per-message lock and reach the disk
// before the caller acts on them (an expansion group in one write, so it is
// recorded whole or not at all); only the holder of an entry's lock changes it.
// Must never: overwrite an existing entry, deliver from an entry it has not
// locked, or let an unreadable entry stop a scan.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/unique_fd.hpp"
#include "mail/message.hpp"
#include "queue/queue_entry.hpp"
#include "queue/queue_id.hpp"

namespace mailroom::mail {

enum class QueueFolder { queue, hold, quarantine };

using DirStream = std::unique_ptr<DIR, int (*)(DIR*)>;

class Spool {
public:
    // Opens spool_dir, creating it and its folders (0700) when missing and the
    // caller may. Error (with the path) when it cannot, and EPERM when a folder
    // (tmp, queue, hold, quarantine) is a symbolic link, not a folder, or does not
    // belong to the spool owner: a program with the spool owner's rights must not
    // be sent to work in folders someone else arranged. The folders are opened
    // here once; entries are then created, swept, read, locked, moved and removed
    // through these descriptors (*at calls), so a name swapped later cannot
    // redirect them. (Still by path: the commit's rename.)
    static core::Result<Spool> open(std::string dir);

    const std::string& dir() const { return dir_; }
    std::string folder_path(QueueFolder folder) const;
    std::string entry_path(QueueFolder folder, std::string_view id) const;
    std::string tmp_dir() const { return dir_ + "/tmp"; }
    std::string trigger_path() const { return dir_ + "/trigger"; }
    // The owner of spool_dir: queue files belong to it whoever wrote them.
    uid_t owner_uid() const { return owner_uid_; }
    gid_t owner_gid() const { return owner_gid_; }

    // Calls visit(id) for each name of a folder that is a queue ID, in directory
    // order, without holding the listing in memory. visit returns false to stop.
    // The name may be anything (docs/spool.md, "Not an entry"): reading or locking
    // it tells. Other names are never visited: the queue leaves them alone.
    core::Result<void> for_each_entry(QueueFolder folder, const std::function<bool(const std::string&)>& visit) const;
    // A readdir stream of the folder as opened (the daemon's scan reads it bit by bit).
    core::Result<DirStream> open_scan(QueueFolder folder) const;

    // Moves an unreadable entry, or whatever else stands under a queue ID (a
    // folder, a symbolic link: the name itself, never followed), to quarantine/;
    // no lock: nobody can deliver it. Never replaces an earlier one there: returns
    // the name it got, the ID or "ID.2", "ID.3"...
    core::Result<std::string> quarantine(std::string_view id, QueueFolder from) const;
    // Removes temporary files older than max_age left by crashed submissions.
    void sweep_tmp(std::time_t now, std::time_t max_age) const;

    // Wakes a running daemon for this entry; false when no daemon reads the trigger.
    bool wake_daemon(std::string_view id) const { return notify_daemon(id); }
    // Writes one line to the trigger: a queue ID, or "flush" (scan the queue now,
    // mailctl flush / requeue). False when no daemon reads the trigger.
    bool notify_daemon(std::string_view line) const;

    std::string next_queue_id() const { return ids_.next(); }

    // The folders as opened (and checked) by open(), for *at() calls.
    int tmp_fd() const { return tmp_fd_.get(); }
    int folder_fd(QueueFolder folder) const;

private:
    Spool(std::string dir, uid_t uid, gid_t gid) : dir_(std::move(dir)), owner_uid_(uid), owner_gid_(gid) {}
    std::string dir_;
    mutable QueueIdGenerator ids_;
    uid_t owner_uid_;
    gid_t owner_gid_;
    core::UniqueFd tmp_fd_, queue_fd_, hold_fd_, quarantine_fd_;
};

// One submission being written. Abandoned (its temp file removed) unless committed.
class QueueWriter {
public:
    static core::Result<QueueWriter> begin(const Spool& spool);

    QueueWriter(QueueWriter&&) noexcept;
    QueueWriter& operator=(QueueWriter&&) = delete;
    QueueWriter(const QueueWriter&) = delete;
    ~QueueWriter();

    const std::string& id() const { return id_; }
    uint64_t size() const { return size_; }
    core::Result<void> write(std::string_view bytes);
    // Makes the entry durable in queue/ (or hold/): header, envelope, fsync, rename, folder fsync.
    // An error means nothing was queued: when the folder fsync after the rename
    // fails, the entry is taken back out of the folder first (so a caller that
    // retries does not deliver twice), unless a runner already holds it, which
    // then delivers it: that is reported as success (docs/spool.md).
    core::Result<void> commit(const Envelope& envelope, QueueFolder folder = QueueFolder::queue);

    // commit() in its three steps, for a caller that runs the two syncs itself, without
    // blocking on them (the SMTP listener: other sessions go on, and the syncs of
    // several commits overlap or are shared). Each step takes the outcome of the sync
    // before it, so a failed sync can never be followed by the next step:
    //   stage(envelope)              header and envelope written; fdatasync data_fd()
    //   publish(data_synced, folder) renamed into the folder; fsync folder_fd(folder)
    //   settle(folder_synced, folder) as commit() ends: on a failed sync, taken back
    core::Result<void> stage(const Envelope& envelope);
    int data_fd() const { return fd_.get(); }
    core::Result<void> publish(core::Result<void> data_synced, QueueFolder folder = QueueFolder::queue);
    int folder_fd(QueueFolder folder = QueueFolder::queue) const;
    core::Result<void> settle(core::Result<void> folder_synced, QueueFolder folder = QueueFolder::queue);

private:
    QueueWriter(const Spool& spool, std::string id, core::UniqueFd fd, std::string tmp_path)
        : spool_(&spool), id_(std::move(id)), fd_(std::move(fd)), tmp_path_(std::move(tmp_path)) {}
    const Spool* spool_;
    std::string id_;
    core::UniqueFd fd_;
    std::string tmp_path_;  // empty once published
    uint64_t size_ = 0;
    std::string buffer_;
};

// Fault injection for tests only: replaces the folder fsync that ends
// QueueWriter::commit (the sync that makes the rename durable). Null (the real
// core::fsync_dir) in every program; set it back to null after the test.
using CommitFolderSync = core::Result<void> (*)(const std::string& folder);
void set_commit_folder_sync_for_tests(CommitFolderSync sync);

// A read of an entry's envelope and state without its lock (mailq): may be a
// moment out of date, never torn.
struct EntrySnapshot {
    std::string id;
    QueueFolder folder = QueueFolder::queue;
    uint64_t message_size = 0;
    Envelope envelope;
    EntryState state;
    bool active = false;  // locked by a runner now
    int version = queue_format_version;  // of the entry file (1: written before version 2)
};
core::Result<EntrySnapshot> read_entry(const Spool& spool, QueueFolder folder, std::string_view id);

struct LockAttempt;

// An entry opened and locked for delivery or administration.
class LockedEntry {
public:
    // No entry when another process holds the lock (busy) or the entry is not in
    // that folder (any more). An error with EBADMSG: the entry is corrupt, quarantine it.
    // wait: block until the lock is free instead of answering busy.
    static core::Result<LockAttempt> lock(const Spool& spool, QueueFolder folder, std::string_view id,
                                          bool wait = false);

    LockedEntry(LockedEntry&&) = default;
    LockedEntry& operator=(LockedEntry&&) = default;

    const std::string& id() const { return id_; }
    QueueFolder folder() const { return folder_; }
    const Envelope& envelope() const { return envelope_; }
    const EntryState& state() const { return state_; }
    uint64_t message_size() const { return message_size_; }

    // The message content, read from the entry itself (no copy), through a read-only
    // descriptor of its own: it is handed to delivery children running as users.
    core::Result<Message> message() const;
    // The entry file's format version (1 until upgraded).
    int version() const { return version_; }

    // Appends records and makes them durable before returning (fdatasync). EINVAL
    // (nothing written) when a record names an index that does not exist, or an
    // expanded recipient's own index (records then name its leaves).
    enum class Durability {
        synced,        // fdatasync'ed before append returns: the default
        removed_next,  // the caller unlinks the entry at once: no sync (see spool.cpp)
    };
    core::Result<void> append(const std::vector<StateRecord>& records, Durability durability = Durability::synced);
    // Records the expansion of one recipient: its leaves (numbered here, after the
    // recipients and the leaves already recorded; index and recipient of `leaves`
    // are overwritten) and the closing "expanded" record, in one write and one
    // fdatasync. A later expansion of the same recipient supersedes its leaves not
    // yet done. Upgrades a version 1 entry first. EINVAL (nothing written) when a
    // field would not read back (docs/spool.md).
    core::Result<void> append_expansion(size_t recipient, std::time_t time, std::vector<LeafRecord> leaves);
    // Turns a version 1 entry into version 2 (rewrites the version digit, fdatasync);
    // nothing to do for a version 2 entry. append_expansion calls it.
    core::Result<void> upgrade();
    // Sets when the entry is next due (its mtime).
    core::Result<void> set_due(std::time_t when);
    // Unlinks the entry (all its recipients are done, or it is deleted).
    core::Result<void> remove();
    // hold / release: moves the entry to another folder, keeping the lock.
    core::Result<void> move_to(QueueFolder folder);

private:
    LockedEntry() = default;
    const Spool* spool_ = nullptr;
    std::string id_;
    QueueFolder folder_ = QueueFolder::queue;
    core::UniqueFd fd_;
    Envelope envelope_;
    EntryState state_;
    uint64_t message_size_ = 0;
    int version_ = queue_format_version;
    uint64_t end_offset_ = 0;  // where the next state record goes
};

struct LockAttempt {
    enum class Outcome { locked, busy, gone };
    Outcome outcome = Outcome::gone;
    std::optional<LockedEntry> entry;  // set when locked
};

}  // namespace mailroom::mail
