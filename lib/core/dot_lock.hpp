// DotLock: the classic mailbox dotlock `PATH.lock`, created with O_EXCL, holding a
// record line `PID\n` and then `PID OLD_SIZE DEV INO\n` once the locker knows the size
// (and device and inode) of the file it is about to append to. The destructor unlinks
// it (if it is still ours).
//
// Invariants: a DotLock that exists created PATH.lock itself and owns its fd.
// A lock found in the way is removed only when it is stale (mtime older than the stale
// age: SPEC 5 minutes), when its record names a PID that no longer exists
// (kill(pid, 0) fails with ESRCH), or when it belongs to neither options.owner nor root
// (then it cannot guard a write: only they can write the owner's mailbox, and its
// owner could keep it fresh for ever). Its record and owner are then kept in
// taken_over(); the mailbox writer decides whether to trust the record
// (mail/mbox_repair.hpp) to cut off what a dead writer left half-written.
// A lock that should be removed but may not be (another user's file in a sticky
// folder) is an error with code EEXIST, returned at once: the caller decides what to
// do without the dotlock (docs/mbox.md).
// Must never: follow a symlink, remove a live writer's lock, sleep in whole seconds,
// throw. A lock whose content cannot be parsed or read (a peer between creating it and
// writing its PID, a foreign format, a symlink, a file we may not read) counts as live
// until it is stale, unless it is foreign as above.
//
// Limits: "PID no longer exists" is only meaningful on one host and in one PID
// namespace; mailboxes shared over NFS or between containers must not rely on it.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::core {

// Which file a record is about: a record only describes the mailbox it names, not
// whatever file has that path later (or a file someone else's record was written for).
struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    bool operator==(const FileId&) const = default;
};

// `PID\n`, `PID OLD_SIZE DEV INO\n` (what we write) or `PID OLD_SIZE\n` (what mailroom
// wrote before the device and inode were added; parsed so that it is recognised, never
// acted on): who holds a mailbox and how long it was before they started appending.
struct LockRecord {
    pid_t pid = 0;
    std::optional<uint64_t> size;
    std::optional<FileId> file;  // only with size
};
std::optional<LockRecord> parse_lock_record(std::string_view text);
std::string format_lock_record(const LockRecord& record);

// A record file (a dotlock, or mbox repair's sidecar) as found beside a mailbox in a
// folder others may write: the name is never followed if it is a symlink, a FIFO never
// blocks the read, and st describes the very file whose bytes were read.
struct RecordFile {
    struct stat st {};                  // lstat of the name: owner, links, age, kind
    std::optional<LockRecord> record;   // when a regular file was read and parsed
    std::string unreadable;             // why nothing was read ("is a symbolic link"...)
    bool replaced = false;              // another file took the name while we read
};
// Nothing when the name does not exist (or vanished before it could be read); an
// error only when it cannot even be looked at (lstat fails otherwise).
Result<std::optional<RecordFile>> read_record_file(const std::string& path);

// True when kill(pid, 0) says ESRCH, or the process is a zombie (killed, never reaped);
// EPERM means alive under another uid.
bool process_is_gone(pid_t pid);

// What we found in a lock we removed.
struct TakenOverLock {
    LockRecord record;
    bool stale = false;        // older than the stale age
    bool writer_gone = false;  // its PID no longer exists
    uid_t owner = 0;           // who the lock file belonged to
    nlink_t links = 1;
};

struct DotLockOptions {
    std::chrono::milliseconds timeout{60'000};
    std::chrono::seconds stale_age{300};
    // The uid whose file is locked. A lock of any other uid but root is not waited
    // for (see above). Empty: every lock is waited for until stale, whoever made it.
    std::optional<uid_t> owner;
};

class DotLock {
public:
    // Creates target_path + ".lock", retrying with short sleeps until options.timeout.
    // Timeout: an Error with code EWOULDBLOCK. A lock that should be removed but may
    // not be: EEXIST, at once, whose context (error().context) says which lock, whose
    // and why it was to go. Other errors (EACCES on the folder...) are returned at once.
    static Result<DotLock> acquire(const std::string& target_path, const DotLockOptions& options);

    DotLock(DotLock&&) noexcept = default;
    DotLock& operator=(DotLock&& other) noexcept;
    DotLock(const DotLock&) = delete;
    DotLock& operator=(const DotLock&) = delete;
    ~DotLock() { release(); }

    // Rewrites the record (`PID SIZE DEV INO\n`). Not fsynced: it protects against the
    // death of this process, not against a power loss (docs/mbox.md).
    Result<void> set_record(const LockRecord& record);
    // The record of a dead or stale lock removed on the way to this one, when it was
    // removed just before this lock was created (nothing else could have slipped in
    // between as a dotlock holder). Empty when there was none or it was unreadable.
    const std::optional<TakenOverLock>& taken_over() const { return taken_over_; }
    const std::string& path() const { return path_; }
    // Unlinks the lock if the path still names our file (idempotent).
    void release();

private:
    DotLock(std::string path, UniqueFd fd, std::optional<TakenOverLock> taken_over);
    std::string path_;
    UniqueFd fd_;
    std::optional<TakenOverLock> taken_over_;
};

}  // namespace mailroom::core
