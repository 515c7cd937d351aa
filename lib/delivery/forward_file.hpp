// ForwardFile: finding and reading a user's .forward as SPEC 5 says (docs/forward.md),
// for the expander. It returns the lines that hold targets, with their numbers; the
// target syntax of a line is the aliases parser's business, not this file's.
//
// The answer is one of four: none (no file at any path), used (the lines), refused
// (the file exists but may not be used: the caller delivers to the mailbox and logs
// the reason), temporary (the file exists but cannot be judged or read now: EIO, NFS
// ESTALE, ENOMEM, a group lookup that failed; the caller defers the recipient).
// Invariants: the paths are tried in order and the first that exists decides: a
// refused .forward+ext does not fall back to .forward. The file and its folder are
// opened with the user's rights (when running as root, a revocable switch of the
// effective ids for the few system calls that touch them; see forward_file.cpp) so a
// root-squashed NFS home works and the user can never make us read what they could
// not. The file is judged by fstat of the very descriptor that is read, never by its
// name; its folder by fstat of an O_DIRECTORY descriptor the file is opened through.
// Every reason is one line with no raw control byte (paths pass core::escape_line).
// Must never: follow a symlink at the file itself, block on a FIFO, open a device,
// read more than the size cap, throw, return with the effective ids switched.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/users.hpp"
#include "delivery/file_probe.hpp"
#include "delivery/forward_path.hpp"
#include "delivery/private_group.hpp"

namespace mailroom::mail {

using ForwardLine = TextLine;

struct ForwardResult {
    enum class Kind { none, used, refused, temporary };
    Kind kind = Kind::none;
    std::string path;        // the file that decided, as tried (empty for none)
    std::string shown_path;  // "~bob/.forward" when under the user's home, else the path; escaped
    std::vector<ForwardLine> lines;  // used: the lines that hold targets, in file order
    std::string reason;              // refused, temporary: one line, e.g. "group-writable"
    // Items of forward_path that were not tried (ForwardFile::find only).
    std::vector<SkippedForwardPath> skipped;

    // Provenance of a line for targets, the log and `mailctl trace`: "~bob/.forward:3".
    std::string where(const ForwardLine& line) const;
    // One line for the log and `mailctl trace`: "~bob/.forward ignored: group-writable",
    // "~bob/.forward unreadable now: cannot be read: Stale file handle", "~bob/.forward: 3 lines",
    // "no .forward".
    std::string describe() const;
};

struct ForwardReadOptions {
    size_t max_size = 64 * 1024;      // a larger file is refused
    const GroupDb* groups = nullptr;  // for the private-group rule; null: the system's (NSS)
};

class ForwardFile {
public:
    // Tries the absolute paths in order for user; see above.
    static ForwardResult read(const core::UserInfo& user, const std::vector<std::string>& paths,
                              const ForwardReadOptions& options = {});
    // forward_path expanded for user and the address's extension, then read(); the
    // skipped items are in the result.
    static ForwardResult find(const core::UserInfo& user, std::string_view extension,
                              const ForwardPathSettings& settings, const ForwardReadOptions& options = {});
};

}  // namespace mailroom::mail
