#include "core/dot_lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <charconv>
#include <ctime>
#include <utility>

#include "core/file_lock.hpp"
#include "core/io.hpp"

namespace mailroom::core {

namespace {

// Room for the longest record we write: `PID SIZE DEV INO\n` is at most 74 bytes.
constexpr size_t record_limit = 128;

template <typename T>
bool parse_number(std::string_view& text, T& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ec != std::errc() || end == text.data()) return false;
    text.remove_prefix(static_cast<size_t>(end - text.data()));
    return true;
}

bool same_file(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// What stands in the way of our O_EXCL create.
struct Obstacle {
    bool vanished = false;  // gone (or replaced) before we could look: just retry
    bool removable = false;
    bool foreign = false;   // neither the owner's nor root's
    TakenOverLock found;
    bool record_valid = false;
    struct stat st {};
};

Result<Obstacle> inspect(const std::string& path, const DotLockOptions& options) {
    Obstacle obstacle;
    // A symlink or a file we may not open (another user's 0600 lock) is still an
    // obstacle with an owner and an age, not an error that stops delivery.
    auto file = read_record_file(path);
    if (!file) return unexpected(file.error());
    if (!*file || (*file)->replaced) {
        obstacle.vanished = true;  // gone or replaced before we could look: just retry
        return obstacle;
    }
    obstacle.st = (*file)->st;
    obstacle.found.owner = obstacle.st.st_uid;
    obstacle.found.links = obstacle.st.st_nlink;
    if (auto& record = (*file)->record) {
        obstacle.found.record = *record;
        obstacle.record_valid = true;
        obstacle.found.writer_gone = process_is_gone(record->pid);
    }
    auto age = std::time(nullptr) - obstacle.st.st_mtime;
    obstacle.found.stale = age > static_cast<std::time_t>(options.stale_age.count());
    obstacle.foreign = options.owner && obstacle.st.st_uid != *options.owner && obstacle.st.st_uid != 0;
    obstacle.removable = obstacle.found.stale || obstacle.found.writer_gone || obstacle.foreign;
    return obstacle;
}

// Why a lock that we would remove is in the way, for the EEXIST error text.
std::string obstacle_text(const std::string& path, const Obstacle& obstacle) {
    std::string why = obstacle.foreign          ? "not the mailbox owner's"
                      : obstacle.found.writer_gone ? "its writer is gone"
                                                   : "stale";
    return "lock " + path + " (uid " + std::to_string(obstacle.st.st_uid) + ", " + why + ") cannot be removed";
}

}  // namespace

Result<std::optional<RecordFile>> read_record_file(const std::string& path) {
    RecordFile file;
    if (::lstat(path.c_str(), &file.st) != 0) {
        if (errno == ENOENT) return std::optional<RecordFile>();
        return unexpected_errno("stat " + path);
    }
    if (S_ISLNK(file.st.st_mode)) {
        file.unreadable = "is a symbolic link";
        return std::optional<RecordFile>(std::move(file));
    }
    if (!S_ISREG(file.st.st_mode)) {
        file.unreadable = "is not a regular file";
        return std::optional<RecordFile>(std::move(file));
    }
    // O_NONBLOCK: a FIFO swapped in after the lstat must not hang us.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    struct stat opened {};
    if (!fd || ::fstat(fd.get(), &opened) != 0) {
        if (errno == ENOENT) return std::optional<RecordFile>();
        file.unreadable = std::string("cannot be read (") + std::strerror(errno) + ")";
        return std::optional<RecordFile>(std::move(file));
    }
    // What callers judge (owner, links, age) must be what we read.
    if (!same_file(opened, file.st)) {
        file.replaced = true;
        file.unreadable = "changed while it was read";
        return std::optional<RecordFile>(std::move(file));
    }
    char buf[record_limit];
    auto n = pread_full(fd.get(), buf, sizeof buf, 0, path);
    if (!n) {
        file.unreadable = "cannot be read (" + n.error().message() + ")";
        return std::optional<RecordFile>(std::move(file));
    }
    file.record = parse_lock_record(std::string_view(buf, *n));
    return std::optional<RecordFile>(std::move(file));
}

std::optional<LockRecord> parse_lock_record(std::string_view text) {
    LockRecord record;
    if (!parse_number(text, record.pid) || record.pid <= 0) return std::nullopt;
    if (!text.empty() && text.front() == ' ') {
        text.remove_prefix(1);
        uint64_t size = 0;
        if (!parse_number(text, size)) return std::nullopt;
        record.size = size;
        if (!text.empty() && text.front() == ' ') {
            text.remove_prefix(1);
            uint64_t dev = 0, ino = 0;
            if (!parse_number(text, dev) || text.empty() || text.front() != ' ') return std::nullopt;
            text.remove_prefix(1);
            if (!parse_number(text, ino)) return std::nullopt;
            record.file = FileId{static_cast<dev_t>(dev), static_cast<ino_t>(ino)};
        }
    }
    // A record ends with its newline; without it, it is still being written.
    if (text != "\n") return std::nullopt;
    return record;
}

std::string format_lock_record(const LockRecord& record) {
    std::string text = std::to_string(record.pid);
    if (record.size) {
        text += ' ' + std::to_string(*record.size);
        if (record.file)
            text += ' ' + std::to_string(static_cast<uint64_t>(record.file->dev)) + ' ' +
                    std::to_string(static_cast<uint64_t>(record.file->ino));
    }
    text += '\n';
    return text;
}

bool process_is_gone(pid_t pid) {
    if (pid <= 0) return false;
    if (::kill(pid, 0) == -1) return errno == ESRCH;
    // A killed writer whose parent never reaps it (a container whose init does not)
    // stays a zombie: it holds nothing and writes nothing any more.
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[512];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return false;
    std::string_view stat(buf, static_cast<size_t>(n));
    // "PID (comm) STATE ...": comm may hold spaces and parentheses, the last ')' ends it.
    auto close_paren = stat.rfind(')');
    return close_paren != std::string_view::npos && close_paren + 2 < stat.size() && stat[close_paren + 2] == 'Z';
}

namespace {

// Makes a file holding `record` and links it to `path`, so that PATH.lock never
// exists without its record: a writer killed between a plain create and its write
// would leave an empty lock that every delivery must wait out until it is stale.
// The file is nameless (O_TMPFILE) where the file system allows, else a named
// temporary beside the lock that is removed at once. Returns the fd of the lock,
// or an invalid fd with errno EEXIST when PATH.lock is already there.
Result<UniqueFd> create_lock_file(const std::string& path, const std::string& record) {
    std::string dir = dir_of(path);
    UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
    std::string temp;
    if (!fd) {
        temp = path + "." + std::to_string(::getpid());
        ::unlink(temp.c_str());  // a leftover of a dead process that had our pid
        fd.reset(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!fd) return unexpected_errno("create lock " + temp);
    }
    if (auto written = write_all(fd.get(), record, "lock " + path); !written) {
        if (!temp.empty()) ::unlink(temp.c_str());
        return unexpected(written.error());
    }
    int linked = temp.empty()
                     ? ::linkat(AT_FDCWD, ("/proc/self/fd/" + std::to_string(fd.get())).c_str(), AT_FDCWD,
                                path.c_str(), AT_SYMLINK_FOLLOW)
                     : ::link(temp.c_str(), path.c_str());
    int saved = errno;
    if (!temp.empty()) ::unlink(temp.c_str());
    if (linked != 0) {
        if (saved == EEXIST) {
            errno = EEXIST;
            return UniqueFd();
        }
        return unexpected_errno("create lock " + path, saved);
    }
    return fd;
}

}  // namespace

Result<DotLock> DotLock::acquire(const std::string& target_path, const DotLockOptions& options) {
    std::string path = target_path + ".lock";
    LockBackoff backoff(options.timeout);
    std::optional<TakenOverLock> removed;
    const std::string record = format_lock_record({::getpid(), std::nullopt});
    for (;;) {
        auto created = create_lock_file(path, record);
        if (!created) return unexpected(created.error());
        if (created->valid()) return DotLock(path, std::move(*created), std::move(removed));
        // Someone else created a lock after we removed one: what we removed is no
        // longer the state of the mailbox, so forget it.
        removed.reset();

        auto obstacle = inspect(path, options);
        if (!obstacle) return unexpected(obstacle.error());
        if (obstacle->vanished) continue;
        if (obstacle->removable) {
            // Unlink only the file we looked at: another waiter may have replaced it
            // with a live lock meanwhile. (A window remains between this lstat and the
            // unlink; the fcntl lock, taken first by default, closes it among mailroom
            // writers.)
            struct stat now {};
            if (::lstat(path.c_str(), &now) == 0 && same_file(now, obstacle->st)) {
                if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
                    // Another user's file in a sticky folder: waiting will not help.
                    if (errno == EPERM || errno == EACCES)
                        return unexpected_errno(obstacle_text(path, *obstacle) + " (" + std::strerror(errno) + ")", EEXIST);
                    return unexpected_errno("remove stale lock " + path);
                }
                if (obstacle->record_valid) removed = obstacle->found;
            }
            continue;
        }
        if (!backoff.wait()) return unexpected_errno("lock " + path + ": timed out", EWOULDBLOCK);
    }
}

DotLock::DotLock(std::string path, UniqueFd fd, std::optional<TakenOverLock> taken_over)
    : path_(std::move(path)), fd_(std::move(fd)), taken_over_(std::move(taken_over)) {}

DotLock& DotLock::operator=(DotLock&& other) noexcept {
    if (this != &other) {
        release();
        path_ = std::move(other.path_);
        fd_ = std::move(other.fd_);
        taken_over_ = std::move(other.taken_over_);
    }
    return *this;
}

Result<void> DotLock::set_record(const LockRecord& record) {
    // The new record is longer than `PID\n` (and begins with the same PID, as written
    // by us) and is written at offset 0, so a reader sees the old record or the new
    // one; no truncate needed.
    std::string text = format_lock_record(record);
    ssize_t n;
    do {
        n = ::pwrite(fd_.get(), text.data(), text.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return unexpected_errno("write lock " + path_);
    if (static_cast<size_t>(n) != text.size()) return unexpected_errno("write lock " + path_, EIO);
    return {};
}

void DotLock::release() {
    if (!fd_) return;
    struct stat ours {}, now {};
    // If our lock was removed as stale and someone else holds PATH.lock now, leave theirs.
    if (::fstat(fd_.get(), &ours) == 0 && ::lstat(path_.c_str(), &now) == 0 && same_file(ours, now))
        ::unlink(path_.c_str());
    fd_.reset();
}

}  // namespace mailroom::core
