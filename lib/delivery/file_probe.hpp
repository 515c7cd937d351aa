// FileProbe: looking at a small file that someone else controls (a .forward, an
// :include: list) without being led astray: the name is examined without following
// a symbolic link, only a regular file is ever opened (O_NOFOLLOW | O_NONBLOCK, so a
// name swapped for a link or a FIFO meanwhile neither leads out nor blocks), and
// every fact reported is the fstat of the very descriptor that was read, read
// through a descriptor of its folder. Nothing here judges: the callers apply their
// own rules (docs/forward.md, docs/aliases.md) to what was found.
// Must never: follow a symlink at the file itself, open a device or FIFO, read more
// than the cap plus one byte, throw.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/users.hpp"

namespace mailroom::mail {

// What was found at one path while holding the user's rights. Nothing here is judged:
// the caller judges (and looks groups up) after switching back.
struct Probe {
    enum class State { missing, exists, refused, temporary };
    State state = State::missing;
    std::string folder;       // the folder holding the file, as in the path
    std::string reason;       // refused, temporary
    struct stat folder_st {};  // fstat of the O_DIRECTORY descriptor
    struct stat file_st {};    // fstat of the opened file, or its lstat when not opened
    std::string bytes;        // read when a regular file no larger than the cap
    bool too_large = false;
};


// Looks at one absolute path. Safe to run with another user's rights: only system
// calls on the path, no lookups, no allocation beyond the path and the file's bytes.
Probe probe_path(const std::string& path, size_t max_size);

// The paths tried in order with `user`'s rights (when this process is root; else
// with its own), the first that exists deciding; missing when none does. A switch
// of rights that fails is a temporary probe naming why.
struct FoundProbe {
    std::string path;
    Probe probe;
};
FoundProbe probe_first(const std::vector<std::string>& paths, size_t max_size, const core::UserInfo& user);

// A line of a small text file that holds targets (blank and # lines dropped).
struct TextLine {
    unsigned number = 0;  // 1-based line number in the file
    std::string text;     // without its newline and a trailing CR; never blank nor a # comment
};
std::vector<TextLine> lines_of(const std::string& bytes);

// "64 KB", "1 MB", "100 bytes".
std::string size_text(size_t bytes);
// What kind of thing a non-regular name is, in a reason's words: "a symbolic link"...
std::string not_regular_reason(mode_t mode);

// The errno values that mean "cannot be read now, try later" (EIO, ESTALE, ENOMEM,
// ENFILE, EMFILE, EAGAIN, ETIMEDOUT, network errors of a remote home...) rather than
// "may not be read" (EACCES, ELOOP...): the first defers, the second refuses.
bool is_temporary_file_error(int err);

}  // namespace mailroom::mail
