// Crash repair for mbox appends (docs/mbox.md): the sidecar append record
// PATH.mailroom-append used when there is no dotlock, and the cut of a torn tail that a
// writer killed mid-append left behind.
//
// Invariants: callers hold the mailbox locks; a record is only acted on when it is a
// dead writer's (its dotlock was taken over, or it is a sidecar found under our fcntl
// lock, which the kernel released when that writer died) and judge_record() trusts it:
// in a mail folder other users can write, anyone can plant PATH.lock or
// PATH.mailroom-append, so only a file that only the mailbox owner or root could have
// made, naming this very mailbox, may decide what is cut.
// Must never: cut anything that is not one message of ours: the tail must begin as our
// From_ line does and contain no further unquoted "From " line (which would be a later
// delivery by a writer that did not see the record).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "core/dot_lock.hpp"
#include "core/result.hpp"

namespace mailroom::mail {

std::string append_record_path(const std::string& mailbox_path);

// A crash-repair record as found on disk (a sidecar, or a dotlock we took over), with
// what decides whether it may be acted on.
struct FoundRecord {
    std::string path;
    std::optional<core::LockRecord> record;  // empty: none could be read or parsed
    std::string unreadable;                   // why none could be read ("is a symbolic link"...)
    uid_t owner = 0;
    nlink_t links = 1;
};

// What to do with a found record: cut back to cut_to (when set), and when ignored is
// not empty, say why the record was not used ("owned by uid 1001").
struct RecordVerdict {
    std::optional<uint64_t> cut_to;
    std::string ignored;
};

// A record is trusted only when it is a regular file (never a symlink) of one link,
// owned by `owner` (the mailbox owner) or root, in the current format, naming the
// mailbox's device and inode (`mailbox` is its fstat) and a size no larger than the
// mailbox. An old-format record (`PID SIZE`) is recognised and never acted on: it
// cannot say which file it was written for. A record with no size (a plain dotlock)
// is nothing to act on and not worth a word.
RecordVerdict judge_record(const FoundRecord& found, const struct stat& mailbox, uid_t owner);

// The leftover sidecar; nothing when there is none. Never follows a symlink, never
// blocks on a FIFO.
std::optional<FoundRecord> read_append_record(const std::string& sidecar_path);
// Replaces the sidecar with a fresh file (O_EXCL, no symlinks) holding the record
// (`PID SIZE DEV INO\n`).
// Not fsynced: it guards against process death, not power loss.
core::Result<void> write_append_record(const std::string& sidecar_path, const core::LockRecord& record);
void remove_append_record(const std::string& sidecar_path);

// If fd (open for reading and writing) is longer than old_size and the bytes past it
// are one torn message of ours, truncates the file to old_size and fsyncs it. Returns
// the number of bytes cut (0 when nothing was cut).
core::Result<uint64_t> cut_torn_tail(int fd, uint64_t old_size, const std::string& path);

}  // namespace mailroom::mail
