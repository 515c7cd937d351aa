#include "delivery/file_probe.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "core/io.hpp"
#include "core/log.hpp"
#include "core/privilege.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::mail {

namespace {

std::string shown(std::string_view path) { return core::escape_line(path, 1024); }

Probe failed(Probe probe, int err, const std::string& what) {
    probe.state = is_temporary_file_error(err) ? Probe::State::temporary : Probe::State::refused;
    probe.reason = what + ": " + std::strerror(err);
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

}  // namespace

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

FoundProbe probe_first(const std::vector<std::string>& paths, size_t max_size, const core::UserInfo& user) {
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
    auto cannot = [&](std::string reason) {
        FoundProbe found{paths.empty() ? "" : paths.front(), {}};
        found.probe.state = Probe::State::temporary;
        found.probe.reason = std::move(reason);
        return found;
    };
    if (::geteuid() == 0 && user.uid != 0) {
        auto credentials = core::credentials_for(user);
        if (!credentials) {
            return cannot("cannot list the groups of " + shown(user.name) + ": " + shown(credentials.error().message()));
        }
        auto become = core::PrivilegeSwitch::become(*credentials, core::PrivilegeSwitch::Mode::revocable);
        if (!become) return cannot("cannot take the rights of " + shown(user.name) + ": " + shown(become.error().message()));
        switched.emplace(std::move(*become));
    }
    FoundProbe found;
    for (const auto& candidate : paths) {
        found.probe = probe_path(candidate, max_size);
        if (found.probe.state != Probe::State::missing) {
            found.path = candidate;
            break;
        }
    }
    // Back to our own ids before anything else (the caller's group lookup loads NSS
    // modules); ~PrivilegeSwitch aborts if that is impossible (core/privilege.hpp).
    switched.reset();
    return found;
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

std::vector<TextLine> lines_of(const std::string& bytes) {
    std::vector<TextLine> lines;
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


}  // namespace mailroom::mail
