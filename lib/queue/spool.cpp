#include "queue/spool.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <cstdio>

#include "core/io.hpp"

namespace mailroom::mail {

namespace {

constexpr size_t write_chunk = 64 * 1024;
// An envelope plus state log larger than this is not a queue entry we wrote.
constexpr uint64_t max_tail_size = 16 * 1024 * 1024;

const char* folder_name(QueueFolder folder) {
    switch (folder) {
    case QueueFolder::queue: return "queue";
    case QueueFolder::hold: return "hold";
    case QueueFolder::quarantine: return "quarantine";
    }
    return "queue";
}

// Creates (when missing) and opens one folder of the spool without following a
// symbolic link, and checks that it belongs to the spool owner: the checks hold for
// the very folder later calls use through the descriptor.
core::Result<core::UniqueFd> open_folder(int dir_fd, const std::string& dir, const char* name, uid_t uid, gid_t gid) {
    std::string path = dir + "/" + name;
    if (::mkdirat(dir_fd, name, 0700) == 0) {
        // root builds the spool for its owner, never for itself.
        if (::geteuid() == 0 && uid != 0 && ::fchownat(dir_fd, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
            return core::unexpected_errno("chown " + path);
        }
    } else if (errno != EEXIST) {
        return core::unexpected_errno("create spool folder " + path);
    }
    core::UniqueFd fd(::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        if (errno != ELOOP && errno != ENOTDIR) return core::unexpected_errno("open spool folder " + path);
        // Linux answers either for a symbolic link with O_NOFOLLOW | O_DIRECTORY.
        struct stat link {};
        bool is_link = ::fstatat(dir_fd, name, &link, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(link.st_mode);
        return core::unexpected_errno("spool folder " + path + (is_link ? " is a symbolic link" : " is not a folder"), EPERM);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return core::unexpected_errno("stat " + path);
    if (st.st_uid != uid) {
        return core::unexpected_errno(fmt::format("spool folder {} belongs to uid {}, not to the spool owner (uid {}, owner of {})",
                                                  path, st.st_uid, uid, dir),
                                      EPERM);
    }
    return fd;
}

core::Unexpected corrupt(std::string what) { return core::unexpected_errno(std::move(what), EBADMSG); }

// What a name in a queue folder is when it is not a regular file.
const char* odd_kind(mode_t mode) {
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
    return "not a regular file";
}

struct EntryTail {
    int version = queue_format_version;
    uint64_t message_size = 0;
    uint64_t tail_offset = 0;
    uint64_t file_size = 0;
    ParsedTail parsed;
};

// Reads the first line and everything after the message from an open entry.
core::Result<EntryTail> read_tail(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return core::unexpected_errno("stat " + path);
    if (!S_ISREG(st.st_mode)) return corrupt(path + ": " + odd_kind(st.st_mode) + ", not a queue entry");
    std::array<char, queue_header_size> header{};
    auto n = core::pread_full(fd, header.data(), header.size(), 0, path);
    if (!n) return core::unexpected(n.error());
    auto first = parse_queue_first_line(std::string_view(header.data(), *n));
    if (!first) return core::unexpected(core::errno_error(path + ": " + first.error().context, EBADMSG));
    EntryTail tail;
    tail.version = first->version;
    tail.message_size = first->message_size;
    tail.tail_offset = queue_header_size + first->message_size;
    tail.file_size = static_cast<uint64_t>(st.st_size);
    if (tail.file_size < tail.tail_offset) return corrupt(path + ": queue entry shorter than its message");
    if (tail.file_size - tail.tail_offset > max_tail_size) return corrupt(path + ": queue entry tail too large");
    std::string bytes(tail.file_size - tail.tail_offset, '\0');
    auto got = core::pread_full(fd, bytes.data(), bytes.size(), static_cast<off_t>(tail.tail_offset), path);
    if (!got) return core::unexpected(got.error());
    bytes.resize(*got);
    auto parsed = parse_entry_tail(bytes, tail.version);
    if (!parsed && tail.version < queue_format_version) {
        // A reader without the lock (mailq) may have read the first line just before
        // a runner upgraded the entry and appended version 2 records: the upgrade
        // reached the file before the append, so the first line read again now
        // tells the version of the tail just read.
        char digit = 0;
        auto again = core::pread_full(fd, &digit, 1, static_cast<off_t>(queue_version_offset), path);
        if (again && *again == 1 && digit == '0' + queue_format_version) {
            tail.version = queue_format_version;
            parsed = parse_entry_tail(bytes, tail.version);
        }
    }
    if (!parsed) return core::unexpected(core::errno_error(path + ": " + parsed.error().context, EBADMSG));
    tail.parsed = std::move(*parsed);
    return tail;
}

// Opens the entry `name` of a queue folder. A name that is not a regular file (a
// folder, symbolic link, FIFO... planted in queue/) is corrupt (EBADMSG: the runner
// quarantines it) and is never opened: a FIFO would block the open, a device could
// act on it, a link would lead out of the spool. The stat and the open are two
// steps, so the open is made safe on its own as well (O_NOFOLLOW, O_NONBLOCK, which
// a regular file ignores) and read_tail checks the opened file again.
core::Result<core::UniqueFd> open_entry(int folder_fd, const std::string& name, const std::string& path, int flags) {
    struct stat st {};
    if (::fstatat(folder_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return core::unexpected_errno("open " + path);
    if (!S_ISREG(st.st_mode)) return corrupt(path + ": " + odd_kind(st.st_mode) + ", not a queue entry");
    int fd = ::openat(folder_fd, name.c_str(), flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        // Replaced by something else since the stat.
        if (errno == ELOOP || errno == EISDIR || errno == ENXIO) return corrupt(path + ": not a regular file, not a queue entry");
        return core::unexpected_errno("open " + path);
    }
    return core::UniqueFd(fd);
}

bool is_locked_by_other(int fd) {
    struct flock probe {};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    if (::fcntl(fd, F_OFD_GETLK, &probe) != 0) return false;
    return probe.l_type != F_UNLCK;
}

}  // namespace

core::Result<Spool> Spool::open(std::string dir) {
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    core::UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd && errno == ENOENT) {
        if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return core::unexpected_errno("create spool_dir " + dir);
        dir_fd = core::UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    }
    if (!dir_fd) return core::unexpected_errno("spool_dir " + dir);
    struct stat st {};
    if (::fstat(dir_fd.get(), &st) != 0) return core::unexpected_errno("spool_dir " + dir);
    Spool spool(dir, st.st_uid, st.st_gid);
    std::pair<const char*, core::UniqueFd*> folders[] = {
        {"tmp", &spool.tmp_fd_}, {"queue", &spool.queue_fd_}, {"hold", &spool.hold_fd_}, {"quarantine", &spool.quarantine_fd_}};
    for (auto& [name, fd] : folders) {
        auto opened = open_folder(dir_fd.get(), dir, name, st.st_uid, st.st_gid);
        if (!opened) return core::unexpected(opened.error());
        *fd = std::move(*opened);
    }
    std::string trigger = spool.trigger_path();
    if (::mkfifoat(dir_fd.get(), "trigger", 0600) == 0) {
        if (::geteuid() == 0 && st.st_uid != 0 && ::fchownat(dir_fd.get(), "trigger", st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0) {
            return core::unexpected_errno("chown " + trigger);
        }
    } else if (errno != EEXIST) {
        return core::unexpected_errno("create " + trigger);
    }
    return spool;
}

int Spool::folder_fd(QueueFolder folder) const {
    switch (folder) {
    case QueueFolder::queue: return queue_fd_.get();
    case QueueFolder::hold: return hold_fd_.get();
    case QueueFolder::quarantine: return quarantine_fd_.get();
    }
    return queue_fd_.get();
}

std::string Spool::folder_path(QueueFolder folder) const { return dir_ + "/" + folder_name(folder); }

std::string Spool::entry_path(QueueFolder folder, std::string_view id) const {
    return fmt::format("{}/{}/{}", dir_, folder_name(folder), id);
}

namespace {
// A listing of the folder behind folder_fd. A description of its own: readdir moves
// the offset, which a dup would share with every other user of the folder's fd.
core::Result<DirStream> open_listing(int folder_fd, const std::string& path) {
    int own = ::openat(folder_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (own < 0) return core::unexpected_errno("open " + path);
    DIR* dir = ::fdopendir(own);
    if (!dir) {
        auto error = core::unexpected_errno("open " + path);
        ::close(own);
        return error;
    }
    return DirStream(dir, ::closedir);
}
}  // namespace

core::Result<DirStream> Spool::open_scan(QueueFolder folder) const {
    return open_listing(folder_fd(folder), folder_path(folder));
}

core::Result<void> Spool::for_each_entry(QueueFolder folder,
                                         const std::function<bool(const std::string&)>& visit) const {
    auto dir = open_scan(folder);
    if (!dir) return core::unexpected(dir.error());
    for (;;) {
        errno = 0;
        struct dirent* entry = ::readdir(dir->get());
        if (!entry) {
            if (errno != 0) return core::unexpected_errno("read " + folder_path(folder));
            return {};
        }
        std::string name = entry->d_name;
        if (!is_valid_queue_id(name)) continue;
        if (!visit(name)) return {};
    }
}

core::Result<std::string> Spool::quarantine(std::string_view id, QueueFolder from) const {
    std::string source = entry_path(from, id);
    std::string name(id);
    // The name itself moves (rename never follows a link), and never over an earlier
    // one: a second thing planted under a quarantined ID gets "ID.2" and so on.
    for (int copy = 1; copy <= 100; ++copy) {
        std::string target = copy == 1 ? name : fmt::format("{}.{}", name, copy);
        if (::renameat2(folder_fd(from), name.c_str(), folder_fd(QueueFolder::quarantine), target.c_str(),
                        RENAME_NOREPLACE) == 0) {
            return target;
        }
        if (errno == EINVAL || errno == ENOSYS) {
            // A file system without RENAME_NOREPLACE: replace, as before.
            if (::renameat(folder_fd(from), name.c_str(), folder_fd(QueueFolder::quarantine), name.c_str()) == 0) return name;
            break;
        }
        if (errno != EEXIST) break;
    }
    return core::unexpected_errno("quarantine " + source);
}

void Spool::sweep_tmp(std::time_t now, std::time_t max_age) const {
    auto listing = open_listing(tmp_fd_.get(), tmp_dir());
    if (!listing) return;
    DIR* dir = listing->get();
    while (struct dirent* entry = ::readdir(dir)) {
        if (!is_valid_queue_id(entry->d_name)) continue;
        struct stat st {};
        if (::fstatat(::dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (st.st_mtime + max_age < now) ::unlinkat(::dirfd(dir), entry->d_name, 0);
    }
}

bool Spool::notify_daemon(std::string_view line_text) const {
    // O_NONBLOCK: opening a FIFO for writing fails with ENXIO when nobody reads it,
    // which is how a submission learns that no daemon runs.
    int fd = ::open(trigger_path().c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;
    core::UniqueFd trigger(fd);
    std::string line = fmt::format("{}\n", line_text);
    ssize_t n = ::write(trigger.get(), line.data(), line.size());
    // A full FIFO (EAGAIN) still means a daemon is there; it will find the entry by scanning.
    return n == static_cast<ssize_t>(line.size()) || (n < 0 && errno == EAGAIN);
}

// ---- QueueWriter

core::Result<QueueWriter> QueueWriter::begin(const Spool& spool) {
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::string id = spool.next_queue_id();
        std::string path = spool.tmp_dir() + "/" + id;
        int fd = ::openat(spool.tmp_fd(), id.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            return core::unexpected_errno("create queue file " + path);
        }
        QueueWriter writer(spool, id, core::UniqueFd(fd), path);
        if (::geteuid() == 0 && spool.owner_uid() != 0 &&
            ::fchown(fd, spool.owner_uid(), spool.owner_gid()) != 0) {
            return core::unexpected_errno("chown " + path);
        }
        writer.buffer_ = format_queue_header(0);
        return writer;
    }
    return core::unexpected_errno("create queue file: no free queue ID", EEXIST);
}

QueueWriter::QueueWriter(QueueWriter&& other) noexcept
    : spool_(other.spool_), id_(std::move(other.id_)), fd_(std::move(other.fd_)),
      tmp_path_(std::exchange(other.tmp_path_, {})), size_(other.size_), buffer_(std::move(other.buffer_)) {}

QueueWriter::~QueueWriter() {
    if (!tmp_path_.empty()) ::unlinkat(spool_->tmp_fd(), id_.c_str(), 0);
}

core::Result<void> QueueWriter::write(std::string_view bytes) {
    size_ += bytes.size();
    buffer_.append(bytes);
    if (buffer_.size() < write_chunk) return {};
    auto r = core::write_all(fd_.get(), buffer_, tmp_path_);
    buffer_.clear();
    return r;
}

namespace {
CommitFolderSync commit_folder_sync_hook = nullptr;

core::Result<void> folder_sync(int folder_fd, const std::string& folder) {
    return commit_folder_sync_hook ? commit_folder_sync_hook(folder) : core::fsync_fd(folder_fd, "folder " + folder);
}
}  // namespace

void set_commit_folder_sync_for_tests(CommitFolderSync sync) { commit_folder_sync_hook = sync; }

core::Result<void> QueueWriter::commit(const Envelope& envelope, QueueFolder folder) {
    if (auto staged = stage(envelope); !staged) return staged;
    // The content must be on disk before its name appears in queue/: a crash
    // after the rename must not leave a named entry with missing blocks.
    core::Result<void> data_synced;
    if (::fdatasync(fd_.get()) != 0) data_synced = core::unexpected_errno("fsync " + tmp_path_);
    if (auto published = publish(std::move(data_synced), folder); !published) return published;
    // The rename itself must survive a crash before we report the message accepted.
    return settle(folder_sync(folder_fd(folder), spool_->folder_path(folder)), folder);
}

core::Result<void> QueueWriter::stage(const Envelope& envelope) {
    // A field that would not read back would make the entry corrupt at its first
    // run: refuse it now, while the caller can still say the message was not queued.
    if (auto checked = check_envelope(envelope); !checked) return checked;
    std::string header = format_queue_header(size_);
    std::string tail = format_envelope(envelope);
    bool all_in_buffer = buffer_.size() == size_ + queue_header_size;
    if (all_in_buffer) {
        // The common small message: header, content and envelope in one write.
        buffer_.replace(0, queue_header_size, header);
        buffer_ += tail;
        if (auto r = core::write_all(fd_.get(), buffer_, tmp_path_); !r) return r;
    } else {
        buffer_ += tail;
        if (auto r = core::write_all(fd_.get(), buffer_, tmp_path_); !r) return r;
        if (auto r = core::pwrite_all(fd_.get(), header, 0, tmp_path_); !r) return r;
    }
    buffer_.clear();
    return {};
}

int QueueWriter::folder_fd(QueueFolder folder) const { return spool_->folder_fd(folder); }

core::Result<void> QueueWriter::publish(core::Result<void> data_synced, QueueFolder folder) {
    // Without its data on disk the entry must not get a name in the folder (commit()).
    if (!data_synced) return data_synced;
    // Through the folders opened (and checked) with the spool: a name swapped since
    // cannot redirect the entry.
    const int tmp_fd = spool_->tmp_fd();
    const int into = folder_fd(folder);
    if (::renameat2(tmp_fd, id_.c_str(), into, id_.c_str(), RENAME_NOREPLACE) != 0) {
        const int err = errno;
        std::string final_path = spool_->entry_path(folder, id_);
        if (err != EINVAL && err != ENOSYS) return core::unexpected_errno("rename into " + final_path, err);
        // A file system without RENAME_NOREPLACE: link fails on an existing name just the same.
        if (::linkat(tmp_fd, id_.c_str(), into, id_.c_str(), 0) != 0)
            return core::unexpected_errno("link into " + final_path);
        ::unlinkat(tmp_fd, id_.c_str(), 0);
    }
    tmp_path_.clear();
    return {};
}

core::Result<void> QueueWriter::settle(core::Result<void> folder_synced, QueueFolder folder) {
    assert(tmp_path_.empty() && "settle() comes after a publish() that succeeded");
    if (folder_synced) return {};
    // The caller will say "nothing was queued" and may retry: the entry must not
    // stay to be delivered as well. Take it back, under its lock so that no runner
    // is delivering it meanwhile (a runner that locks it later finds it gone).
    struct flock request {};
    request.l_type = F_WRLCK;
    request.l_whence = SEEK_SET;
    if (::fcntl(fd_.get(), F_OFD_SETLK, &request) != 0) {
        // A runner holds it already (a daemon's scan got there first): it is being
        // delivered, so it was queued; only a crash in the next moment could lose it.
        return {};
    }
    const int from = folder_fd(folder);
    if (::unlinkat(from, id_.c_str(), 0) != 0 && errno != ENOENT) {
        // Still there, and nobody told: report accepted rather than invite a duplicate.
        return {};
    }
    (void)folder_sync(from, spool_->folder_path(folder));  // best effort: the removal should reach the disk too
    return folder_synced;
}

// ---- reading and locking

core::Result<EntrySnapshot> read_entry(const Spool& spool, QueueFolder folder, std::string_view id) {
    std::string path = spool.entry_path(folder, id);
    auto opened = open_entry(spool.folder_fd(folder), std::string(id), path, O_RDONLY);
    if (!opened) return core::unexpected(opened.error());
    core::UniqueFd fd = std::move(*opened);
    auto tail = read_tail(fd.get(), path);
    if (!tail) return core::unexpected(tail.error());
    EntrySnapshot snapshot;
    snapshot.id = std::string(id);
    snapshot.folder = folder;
    snapshot.message_size = tail->message_size;
    snapshot.version = tail->version;
    snapshot.envelope = std::move(tail->parsed.envelope);
    snapshot.state = std::move(tail->parsed.state);
    snapshot.active = is_locked_by_other(fd.get());
    return snapshot;
}

core::Result<LockAttempt> LockedEntry::lock(const Spool& spool, QueueFolder folder, std::string_view id, bool wait) {
    std::string path = spool.entry_path(folder, id);
    std::string name(id);
    auto opened = open_entry(spool.folder_fd(folder), name, path, O_RDWR);
    if (!opened) {
        if (opened.error().errno_value() == ENOENT) return LockAttempt{LockAttempt::Outcome::gone, std::nullopt};
        return core::unexpected(opened.error());
    }
    core::UniqueFd fd = std::move(*opened);
    // An open-file-description lock: held by this open file whatever forks,
    // released by the kernel when the holder dies, and testable by mailq.
    struct flock request {};
    request.l_type = F_WRLCK;
    request.l_whence = SEEK_SET;
    while (::fcntl(fd.get(), wait ? F_OFD_SETLKW : F_OFD_SETLK, &request) != 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EACCES) return LockAttempt{LockAttempt::Outcome::busy, std::nullopt};
        return core::unexpected_errno("lock " + path);
    }
    // Between open and lock another runner may have finished the entry (unlinked)
    // or mailctl moved it: only the file still under this name counts.
    struct stat held {}, named {};
    if (::fstat(fd.get(), &held) != 0) return core::unexpected_errno("stat " + path);
    if (::fstatat(spool.folder_fd(folder), name.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0 || named.st_ino != held.st_ino ||
        named.st_dev != held.st_dev) {
        return LockAttempt{LockAttempt::Outcome::gone, std::nullopt};
    }
    auto tail = read_tail(fd.get(), path);
    if (!tail) return core::unexpected(tail.error());
    LockedEntry entry;
    entry.spool_ = &spool;
    entry.id_ = std::string(id);
    entry.folder_ = folder;
    entry.message_size_ = tail->message_size;
    entry.version_ = tail->version;
    entry.end_offset_ = tail->tail_offset + tail->parsed.valid_length;
    if (entry.end_offset_ < tail->file_size) {
        // A state line torn by a crash, or leaf records without their closing
        // "expanded" record: cut them so the next record starts on a line of its own
        // and no stray leaf joins the next group.
        if (::ftruncate(fd.get(), static_cast<off_t>(entry.end_offset_)) != 0) {
            return core::unexpected_errno("truncate torn state of " + path);
        }
    }
    entry.fd_ = std::move(fd);
    entry.envelope_ = std::move(tail->parsed.envelope);
    entry.state_ = std::move(tail->parsed.state);
    return LockAttempt{LockAttempt::Outcome::locked, std::move(entry)};
}

core::Result<Message> LockedEntry::message() const {
    // A read-only description of its own, not a dup of the locked read-write one: the
    // message's descriptor goes into every delivery child, which runs as the
    // recipient, and must not let one recipient's delivery rewrite the message or the
    // state records that the next recipient's delivery and the runner rely on.
    std::string path = spool_->entry_path(folder_, id_);
    auto opened = open_entry(spool_->folder_fd(folder_), id_, path, O_RDONLY);
    if (!opened) return core::unexpected(opened.error());
    struct stat held {}, reopened {};
    if (::fstat(fd_.get(), &held) != 0 || ::fstat(opened->get(), &reopened) != 0)
        return core::unexpected_errno("stat " + path);
    if (held.st_dev != reopened.st_dev || held.st_ino != reopened.st_ino)
        return core::unexpected_errno(path + ": replaced while locked", ESTALE);
    return Message::from_stored(std::move(*opened), queue_header_size, message_size_);
}

core::Result<void> LockedEntry::append(const std::vector<StateRecord>& records, Durability durability) {
    // Each record must read back: one for an index that does not exist would make
    // the whole entry corrupt. Checked against the state as it will be then.
    EntryState after = state_;
    std::string text;
    for (const auto& record : records) {
        if (auto checked = check_state_record(after, record); !checked) {
            return core::unexpected_errno(id_ + ": " + checked.error().context, EINVAL);
        }
        apply_state_record(after, record);
        text += format_state_record(record);
    }
    std::string path = spool_->entry_path(folder_, id_);
    if (auto r = core::pwrite_all(fd_.get(), text, end_offset_, path); !r) return r;
    // The state must be on disk before anyone acts on it: a delivered recipient
    // is never tried again after a crash, a queued notice never sent twice.
    // Unless the entry is unlinked right after (Durability::removed_next): a crash
    // before the unlink is on disk then brings back an entry whose last record may
    // be lost, which redelivers that one target: the window between the mailbox's
    // fsync and its record that SPEC section 3 allows anyway.
    if (durability == Durability::synced && ::fdatasync(fd_.get()) != 0) return core::unexpected_errno("fsync " + path);
    end_offset_ += text.size();
    state_ = std::move(after);
    return {};
}

core::Result<void> LockedEntry::upgrade() {
    if (version_ >= queue_format_version) return {};
    std::string path = spool_->entry_path(folder_, id_);
    // Version 1 read a recipient by its outermost angle brackets; version 2 ends it
    // at the first '>' outside quotes. An address that tells the two apart (an
    // unclosed quote: Address never lets one in) would make the upgraded entry
    // corrupt, so such an entry stays version 1.
    if (auto readable = check_envelope(envelope_); !readable) {
        return core::unexpected_errno(path + ": cannot upgrade to version 2: " + readable.error().context, EINVAL);
    }
    // Only the version digit changes: the message size and everything after it stay
    // as they are, since a version 2 reader reads every version 1 file. A crash
    // after this write and before the append that needed it therefore leaves a
    // valid version 2 entry with nothing new in it.
    const char digit = static_cast<char>('0' + queue_format_version);
    if (auto r = core::pwrite_all(fd_.get(), std::string_view(&digit, 1), queue_version_offset, path); !r) return r;
    // The new version must be on disk before any version 2 record is: a crash must
    // never leave version 2 records in a file still marked version 1 (corrupt).
    if (::fdatasync(fd_.get()) != 0) return core::unexpected_errno("fsync " + path);
    version_ = queue_format_version;
    return {};
}

core::Result<void> LockedEntry::append_expansion(size_t recipient, std::time_t time, std::vector<LeafRecord> leaves) {
    ExpansionRecord expansion{recipient, time, std::move(leaves)};
    size_t index = state_.next_leaf_index();
    for (auto& leaf : expansion.leaves) {
        leaf.index = index++;
        leaf.recipient = recipient;
    }
    if (auto checked = check_expansion(state_, expansion); !checked) {
        return core::unexpected_errno(id_ + ": " + checked.error().context, EINVAL);
    }
    if (auto upgraded = upgrade(); !upgraded) return upgraded;
    std::string text = format_expansion(expansion);
    std::string path = spool_->entry_path(folder_, id_);
    // The whole group in one write, then one sync: a crash leaves a prefix of it,
    // which has no closing "expanded" line and is ignored and cut by the next
    // holder of the lock. So an expansion is recorded whole or not at all.
    if (auto r = core::pwrite_all(fd_.get(), text, end_offset_, path); !r) return r;
    // On disk before any leaf is delivered: after a crash the next run finds the
    // same leaves (and their delivered records), never expands into new ones
    // beside leaves already delivered.
    if (::fdatasync(fd_.get()) != 0) return core::unexpected_errno("fsync " + path);
    end_offset_ += text.size();
    apply_expansion(state_, expansion);
    return {};
}

core::Result<void> LockedEntry::set_due(std::time_t when) {
    struct timespec times[2] = {{0, UTIME_OMIT}, {when, 0}};
    if (::futimens(fd_.get(), times) != 0) return core::unexpected_errno("set due time of " + id_);
    return {};
}

core::Result<void> LockedEntry::remove() {
    std::string path = spool_->entry_path(folder_, id_);
    // No folder fsync: an entry that comes back after a crash holds only done
    // recipients (its state says so) and is removed again.
    if (::unlinkat(spool_->folder_fd(folder_), id_.c_str(), 0) != 0 && errno != ENOENT) {
        return core::unexpected_errno("remove " + path);
    }
    return {};
}

core::Result<void> LockedEntry::move_to(QueueFolder folder) {
    if (folder == folder_) return {};
    std::string source = spool_->entry_path(folder_, id_);
    if (::renameat(spool_->folder_fd(folder_), id_.c_str(), spool_->folder_fd(folder), id_.c_str()) != 0) {
        return core::unexpected_errno("move " + source);
    }
    folder_ = folder;
    // A hold must survive a restart of the daemon and a crash.
    return core::fsync_dir(spool_->folder_path(folder));
}

}  // namespace mailroom::mail
