// Queue IDs: the name of a queued message, its file name in every spool folder,
// and the handle users see in mailq and the log.
//
// Layout (15 characters of [0-9A-Za-z], SPEC section 3): 9 digits of base-62
// microseconds since the epoch, 4 of the process ID, 2 of a per-process counter.
// The alphabet is in ASCII order, so IDs sort in arrival order as plain strings,
// and the pid and counter make two IDs from one microsecond differ.
// Must never: produce a name with a character outside the alphabet (it becomes a
// file name) or accept one (is_valid guards every name read from a folder or argv).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace mailroom::mail {

class QueueIdGenerator {
public:
    // micros: microseconds since the epoch; pid: the caller's process.
    std::string next(uint64_t micros, pid_t pid);
    // The same, from the real clock and getpid().
    std::string next();

private:
    unsigned counter_ = 0;
};

bool is_valid_queue_id(std::string_view id);

// Microseconds since the epoch encoded in an ID (0 for an invalid one).
uint64_t queue_id_micros(std::string_view id);

}  // namespace mailroom::mail
