#include "delivery/forward_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <optional>

#include "core/io.hpp"
#include "core/log.hpp"
#include "core/privilege.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::mail {
namespace {

using Kind = ForwardResult::Kind;

std::string shown(std::string_view path) { return core::escape_line(path, 1024); }

std::string error_text(int err) { return std::strerror(err); }

// What was found at one path while holding the user's rights. Nothing here is judged
// yet: the judging (and the group lookup it may need) happens after the switch back.
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

Probe failed(Probe probe, int err, const std::string& what) {
    probe.state = is_temporary_file_error(err) ? Probe::State::temporary : Probe::State::refused;
    probe.reason = what + ": " + error_text(err);
    return probe;
}

// "Does not exist": the file, or a folder on its way. ENAMETOOLONG too: such a name
// cannot exist, so the next path is tried.
bool is_missing(int err) { return err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG; }

template <typename Call>
int retry_eintr(Call&& call) {
    int r;
    do r = call();
    while (r < 0 && errno == EINTR);
    return r;
}

// Looks at one path. Runs with the user's rights: only system calls on the path, no
// lookups and no allocation beyond the path strings and the file's bytes.
Probe probe_path(const std::string& path, size_t max_size) {
    Probe probe;
    size_t slash = path.rfind('/');
    if (path.empty() || path.front() != '/') {  // never relative to wherever we are
        probe.state = Probe::State::refused;
        probe.reason = "not an absolute path";
        return probe;
    }
    probe.folder = slash == 0 ? "/" : path.substr(0, slash);
    std::string name = path.substr(slash + 1);
    if (name.empty() || name == "." || name == "..") {
        probe.state = Probe::State::refused;
        probe.reason = "does not name a file";
        return probe;
    }

    // O_PATH: only search permission on the way is needed (a 0711 home works), and
    // the folder's own last component is followed: a home that the administrator
    // made a symlink (/home/bob -> /export/home/bob) is judged as the folder it leads
    // to, which is the folder that holds the file, since the file is opened through
    // this very descriptor.
    core::UniqueFd folder(retry_eintr([&] { return ::open(probe.folder.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC); }));
    if (!folder) {
        if (is_missing(errno)) return probe;
        return failed(std::move(probe), errno, "folder " + shown(probe.folder) + " cannot be opened");
    }
    if (::fstat(folder.get(), &probe.folder_st) != 0)
        return failed(std::move(probe), errno, "folder " + shown(probe.folder) + " cannot be examined");

    // lstat first, so that nothing but a regular file is ever opened (a device could
    // act on open; a FIFO is harmless with O_NONBLOCK, but there is no need).
    if (::fstatat(folder.get(), name.c_str(), &probe.file_st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (is_missing(errno)) return probe;
        // EACCES here: the folder may be entered but not searched by the user.
        return failed(std::move(probe), errno, "folder " + shown(probe.folder) + " cannot be searched");
    }
    probe.state = Probe::State::exists;
    if (!S_ISREG(probe.file_st.st_mode)) return probe;

    // O_NOFOLLOW and O_NONBLOCK: if the name was swapped for a symlink or a FIFO after
    // the lstat, the open fails or does not block; what is judged below is the fstat
    // of this descriptor, whatever the name meant a moment ago.
    core::UniqueFd fd(retry_eintr([&] {
        return ::openat(folder.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    }));
    if (!fd) {
        if (errno == ENOENT) return Probe{};  // removed since the lstat: as if never there
        if (errno == ELOOP) {
            probe.file_st.st_mode = S_IFLNK | 0777;  // swapped for a symlink
            return probe;
        }
        return failed(std::move(probe), errno, "cannot be opened");
    }
    if (::fstat(fd.get(), &probe.file_st) != 0) return failed(std::move(probe), errno, "cannot be examined");
    if (!S_ISREG(probe.file_st.st_mode)) return probe;
    if (probe.file_st.st_size < 0 || static_cast<uint64_t>(probe.file_st.st_size) > max_size) {
        probe.too_large = true;
        return probe;
    }
    // One byte more than the cap: a file that grew since the fstat is still caught.
    probe.bytes.resize(max_size + 1);
    auto n = core::pread_full(fd.get(), probe.bytes.data(), probe.bytes.size(), 0, "");
    if (!n) return failed(std::move(probe), n.error().errno_value(), "cannot be read");
    probe.bytes.resize(*n);
    if (*n > max_size) {
        probe.too_large = true;
        probe.bytes.clear();
    }
    return probe;
}

std::string size_text(size_t bytes) {
    if (bytes % (1024 * 1024) == 0 && bytes > 0) return std::to_string(bytes / (1024 * 1024)) + " MB";
    if (bytes % 1024 == 0 && bytes > 0) return std::to_string(bytes / 1024) + " KB";
    return std::to_string(bytes) + " bytes";
}

// What kind of thing a non-regular name is, in the reason's words.
std::string not_regular_reason(mode_t mode) {
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

std::vector<ForwardLine> lines_of(const std::string& bytes) {
    std::vector<ForwardLine> lines;
    unsigned number = 0;
    size_t pos = 0;
    while (pos < bytes.size()) {
        size_t end = bytes.find('\n', pos);
        if (end == std::string::npos) end = bytes.size();
        std::string text = bytes.substr(pos, end - pos);
        pos = end + 1;
        ++number;
        if (!text.empty() && text.back() == '\r') text.pop_back();
        size_t first = text.find_first_not_of(" \t");
        if (first == std::string::npos || text[first] == '#') continue;
        lines.push_back({number, std::move(text)});
    }
    return lines;
}

ForwardResult decided(Kind kind, const std::string& path, const core::UserInfo& user, std::string reason = "") {
    ForwardResult result;
    result.kind = kind;
    result.path = path;
    std::string home = user.home;
    while (home.size() > 1 && home.back() == '/') home.pop_back();
    bool under_home = home.size() > 1 && home.front() == '/' && path.size() > home.size() + 1 &&
                      path.compare(0, home.size(), home) == 0 && path[home.size()] == '/';
    result.shown_path = under_home ? "~" + shown(user.name) + shown(path.substr(home.size())) : shown(path);
    result.reason = std::move(reason);
    return result;
}

// The SPEC 5 rules on what the probe found, in the order docs/forward.md lists them.
ForwardResult judge(const core::UserInfo& user, const std::string& path, Probe probe,
                    const ForwardReadOptions& options) {
    if (probe.state == Probe::State::refused) return decided(Kind::refused, path, user, probe.reason);
    if (probe.state == Probe::State::temporary) return decided(Kind::temporary, path, user, probe.reason);
    // Sticky does not save a world-writable folder: anyone may create the name there
    // before the user does (SPEC 5: the .forward is then ignored).
    if (probe.folder_st.st_mode & S_IWOTH)
        return decided(Kind::refused, path, user, "in a world-writable folder " + shown(probe.folder));
    const struct stat& st = probe.file_st;
    if (!S_ISREG(st.st_mode)) return decided(Kind::refused, path, user, not_regular_reason(st.st_mode));
    if (st.st_uid != user.uid && st.st_uid != 0)
        return decided(Kind::refused, path, user, "owned by uid " + std::to_string(st.st_uid));
    if (st.st_mode & S_IWOTH) return decided(Kind::refused, path, user, "world-writable");
    if (st.st_mode & S_IWGRP) {
        NssGroupDb nss;
        const GroupDb& groups = options.groups ? *options.groups : nss;
        auto is_private = is_private_group(user, st.st_gid, groups);
        if (!is_private)
            return decided(Kind::temporary, path, user, "group-writable, and " + shown(is_private.error().message()));
        if (!*is_private)
            return decided(Kind::refused, path, user,
                           "group-writable (gid " + std::to_string(st.st_gid) + " is not " + shown(user.name) +
                               "'s private group)");
    }
    // Links are not counted: the file is read with the user's rights, so a hard link
    // to a file the user may not read gives nothing, and one to a file they may read
    // gives nothing they could not write into their own .forward (docs/forward.md).
    if (probe.too_large) return decided(Kind::refused, path, user, "larger than " + size_text(options.max_size));
    if (size_t nul = probe.bytes.find('\0'); nul != std::string::npos) {
        auto line = 1 + std::count(probe.bytes.begin(), probe.bytes.begin() + static_cast<std::ptrdiff_t>(nul), '\n');
        return decided(Kind::refused, path, user, "holds a NUL byte (line " + std::to_string(line) + ")");
    }
    ForwardResult result = decided(Kind::used, path, user);
    result.lines = lines_of(probe.bytes);
    return result;
}

ForwardResult read_paths(const core::UserInfo& user, const std::vector<std::string>& paths,
                         const ForwardReadOptions& options) {
    if (paths.empty()) return {};
    // The user's rights, for the open, fstat and read only, as a revocable switch of
    // the effective ids rather than a forked child. The runner is single-threaded
    // (ARCHITECTURE.md), so no other thread runs with the switched ids; while switched
    // we run no code of the user's, only system calls on their files; the real and
    // saved uid stay root, so the user can neither signal us (kill checks those) nor
    // attach to us (the kernel makes a process whose euid changed non-dumpable). A
    // child per recipient would cost a fork and a pipe protocol for the bytes, for no
    // added isolation. What both share: a hung NFS home blocks the caller while it
    // waits (as the mailbox delivery would); a caller that must not block calls this
    // from a child of its own.
    // Not root: no switch is possible; the files are read with our own rights (the
    // user reading their own, or an unprivileged `mailctl trace` seeing what it may).
    std::optional<core::PrivilegeSwitch> switched;
    if (::geteuid() == 0 && user.uid != 0) {
        auto credentials = core::credentials_for(user);
        if (!credentials)
            return decided(Kind::temporary, paths.front(), user,
                           "cannot list the groups of " + shown(user.name) + ": " + shown(credentials.error().message()));
        auto become = core::PrivilegeSwitch::become(*credentials, core::PrivilegeSwitch::Mode::revocable);
        if (!become)
            return decided(Kind::temporary, paths.front(), user,
                           "cannot take the rights of " + shown(user.name) + ": " + shown(become.error().message()));
        switched.emplace(std::move(*become));
    }
    std::string path;
    Probe probe;
    for (const auto& candidate : paths) {
        probe = probe_path(candidate, options.max_size);
        if (probe.state != Probe::State::missing) {
            path = candidate;
            break;
        }
    }
    // Back to our own ids before anything else (the group lookup loads NSS modules);
    // ~PrivilegeSwitch aborts if that is impossible (core/privilege.hpp).
    switched.reset();
    if (probe.state == Probe::State::missing) return {};
    return judge(user, path, std::move(probe), options);
}

}  // namespace

bool is_temporary_file_error(int err) {
    switch (err) {
        case EIO: case ESTALE: case ENOMEM: case ENFILE: case EMFILE: case EAGAIN: case EINTR:
        case ETIMEDOUT: case ENOBUFS: case ENOLCK: case ENOLINK: case EREMOTEIO: case EHOSTDOWN:
        case EHOSTUNREACH: case ENETDOWN: case ENETUNREACH: case ECONNRESET: case ECONNREFUSED:
        case ECONNABORTED:
            return true;
        default:
            return false;
    }
}

std::string ForwardResult::where(const ForwardLine& line) const {
    return shown_path + ":" + std::to_string(line.number);
}

std::string ForwardResult::describe() const {
    switch (kind) {
        case Kind::none: return "no .forward";
        case Kind::used:
            return shown_path + ": " + std::to_string(lines.size()) + (lines.size() == 1 ? " line" : " lines");
        case Kind::refused: return shown_path + " ignored: " + reason;
        case Kind::temporary: return shown_path + " unreadable now: " + reason;
    }
    return "";
}

ForwardResult ForwardFile::read(const core::UserInfo& user, const std::vector<std::string>& paths,
                                const ForwardReadOptions& options) {
    try {
        return read_paths(user, paths, options);
    } catch (const std::bad_alloc&) {
        // The switch, if any, was undone by its destructor on the way out.
        ForwardResult result;
        result.kind = Kind::temporary;
        result.path = paths.empty() ? "" : paths.front();
        result.shown_path = shown(result.path);
        result.reason = "out of memory";
        return result;
    }
}

ForwardResult ForwardFile::find(const core::UserInfo& user, std::string_view extension,
                                const ForwardPathSettings& settings, const ForwardReadOptions& options) {
    ForwardPaths paths = expand_forward_path(settings, user, extension);
    ForwardResult result = read(user, paths.paths, options);
    result.skipped = std::move(paths.skipped);
    return result;
}

}  // namespace mailroom::mail
