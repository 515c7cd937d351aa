// Crash repair for mbox appends (docs/mbox.md): the sidecar append record
// PATH.mailroom-append used when there is no dotlock, and the cut of a torn tail that a
// writer killed mid-append left behind.
//
// Invariants: callers hold the mailbox locks; a record is only acted on when it is a
// dead writer's (its dotlock was taken over, or it is a sidecar found under our fcntl
// lock, which the kernel released when that writer died).
// Must never: cut anything that is not one message of ours: the tail must begin as our
// From_ line does and contain no further unquoted "From " line (which would be a later
// delivery by a writer that did not see the record).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/dot_lock.hpp"
#include "core/result.hpp"

namespace mailroom::mail {

std::string append_record_path(const std::string& mailbox_path);

// The record in a leftover sidecar; nothing when there is none or it cannot be read
// (then there is nothing we can safely repair).
std::optional<core::LockRecord> read_append_record(const std::string& sidecar_path);
// Replaces the sidecar with a fresh file (O_EXCL, no symlinks) holding `PID SIZE\n`.
// Not fsynced: it guards against process death, not power loss.
core::Result<void> write_append_record(const std::string& sidecar_path, const core::LockRecord& record);
void remove_append_record(const std::string& sidecar_path);

// If fd (open for reading and writing) is longer than old_size and the bytes past it
// are one torn message of ours, truncates the file to old_size and fsyncs it. Returns
// the number of bytes cut (0 when nothing was cut).
core::Result<uint64_t> cut_torn_tail(int fd, uint64_t old_size, const std::string& path);

}  // namespace mailroom::mail
