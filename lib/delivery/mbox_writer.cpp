#include "delivery/mbox_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "core/dot_lock.hpp"
#include "core/file_lock.hpp"
#include "core/io.hpp"
#include "core/unique_fd.hpp"
#include "delivery/mbox_repair.hpp"

namespace mailroom::mail {

namespace {

constexpr size_t chunk_size = 64 * 1024;
constexpr std::string_view from_prefix = "From ";

std::string errno_text(int err) { return std::strerror(err); }

Status refuse(const std::string& path, std::string_view why) {
    return Status::temp("4.2.0", fmt::format("mailbox {} {}", path, why));
}

// Explains an open failure that may be one of our refusals.
Status open_failure(const std::string& path, int err) {
    struct stat st {};
    if ((err == ELOOP || err == EISDIR || err == ENXIO) && ::lstat(path.c_str(), &st) == 0) {
        if (S_ISLNK(st.st_mode)) return refuse(path, "is a symbolic link");
        if (!S_ISREG(st.st_mode)) return refuse(path, "is not a regular file");
    }
    return Status::from_errno(err, fmt::format("cannot open mailbox {}: {}", path, errno_text(err)));
}

// Opens (or creates 0600, owned by the user) the mailbox and checks what it is.
// O_RDWR, not O_WRONLY: the crash repair reads the tail, and a second fd would not do:
// closing it would drop our fcntl lock. O_NONBLOCK: a FIFO must not hang the open.
Status open_mailbox(const DeliveryInfo& info, core::UniqueFd& fd) {
    const std::string& path = info.path;
    const int flags = O_RDWR | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | O_NONBLOCK;
    for (int attempt = 0; attempt < 3 && !fd; ++attempt) {
        fd.reset(::open(path.c_str(), flags));
        if (fd) break;
        if (errno != ENOENT) return open_failure(path, errno);
        fd.reset(::open(path.c_str(), flags | O_CREAT | O_EXCL, 0600));
        if (!fd) {
            if (errno == EEXIST) continue;  // created by someone else meanwhile: open theirs
            return open_failure(path, errno);
        }
        // The umask may have taken bits away; the mode is 0600 exactly (SPEC 4).
        if (::fchmod(fd.get(), 0600) != 0) return open_failure(path, errno);
        if (::geteuid() == 0 && ::fchown(fd.get(), info.uid, info.gid) != 0) return open_failure(path, errno);
        // fsync of the folder: a crash must not lose the new mailbox's name while the
        // message we fsync into it is reported delivered.
        if (auto synced = core::fsync_dir(core::dir_of(path)); !synced) return Status::from_error(synced.error());
    }
    if (!fd) return Status::temp("4.2.0", fmt::format("cannot open mailbox {}: it keeps vanishing", path));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return open_failure(path, errno);
    if (!S_ISREG(st.st_mode)) return refuse(path, "is not a regular file");
    if (st.st_nlink != 1) return refuse(path, fmt::format("has {} hard links", st.st_nlink));
    if (st.st_uid != info.uid) return refuse(path, fmt::format("is owned by uid {}, not {}", st.st_uid, info.uid));
    int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) != 0) return open_failure(path, errno);
    return Status::ok();
}

Status lock_failure(const DeliveryInfo& info, const core::Error& error) {
    if (error.errno_value() == EWOULDBLOCK)
        return Status::temp("4.2.0", fmt::format("cannot lock mailbox {}: timed out after {:g}s", info.path,
                                                 static_cast<double>(info.locks.timeout.count()) / 1000.0));
    return Status::from_errno(error.errno_value(), fmt::format("cannot lock mailbox {}: {}", info.path, error.message()));
}

Status append_failure(const std::string& path, const core::Error& error) {
    return Status::from_errno(error.errno_value(),
                              fmt::format("cannot append to mailbox {}: {}", path, error.message()));
}

core::Result<uint64_t> file_size(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return core::unexpected_errno("stat mailbox " + path);
    return static_cast<uint64_t>(st.st_size);
}

// What must come before our From_ line so that it starts a message: a mailbox left
// without a final newline (by another program) gets its line ended and a blank line.
core::Result<std::string> separator_before(int fd, uint64_t size, const std::string& path) {
    if (size == 0) return std::string();
    char tail[2] = {'\n', '\n'};
    uint64_t want = std::min<uint64_t>(size, 2);
    auto n = core::pread_full(fd, tail + 2 - want, want, static_cast<off_t>(size - want), "mailbox " + path);
    if (!n) return core::unexpected(n.error());
    if (tail[1] != '\n') return std::string("\n\n");
    if (tail[0] != '\n') return std::string("\n");
    return std::string();
}

// Removes the sidecar record when the append is over, unless told to keep it because
// the mailbox could not be put back (then the next delivery repairs it).
class SidecarGuard {
public:
    explicit SidecarGuard(std::string path) : path_(std::move(path)) {}
    SidecarGuard(const SidecarGuard&) = delete;
    SidecarGuard& operator=(const SidecarGuard&) = delete;
    ~SidecarGuard() {
        if (!path_.empty()) remove_append_record(path_);
    }
    void keep() { path_.clear(); }

private:
    std::string path_;
};

}  // namespace

std::string mbox_from_line(std::string_view sender, std::time_t when) {
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::string who = sender.empty() ? std::string("MAILER-DAEMON") : std::string(sender);
    for (char& c : who)
        if (static_cast<unsigned char>(c) <= ' ' || c == '\x7f') c = '_';
    struct tm tm {};
    ::localtime_r(&when, &tm);
    // asctime's layout, spelled out so that no locale can change it.
    return fmt::format("From {} {} {} {:2} {:02}:{:02}:{:02} {}\n", who, days[tm.tm_wday % 7],
                       months[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                       tm.tm_year + 1900);
}

void MboxEscaper::feed(std::string_view chunk, std::string& out) {
    size_t i = 0;
    while (i < chunk.size()) {
        switch (state_) {
            case State::body: {
                auto nl = chunk.find('\n', i);
                size_t end = nl == std::string_view::npos ? chunk.size() : nl + 1;
                out.append(chunk.substr(i, end - i));
                i = end;
                if (nl != std::string_view::npos) state_ = State::line_start;
                break;
            }
            case State::line_start: {
                // The '>' run passes through; the extra '>' goes in front of "From ".
                size_t end = chunk.find_first_not_of('>', i);
                if (end == std::string_view::npos) end = chunk.size();
                out.append(chunk.substr(i, end - i));
                i = end;
                if (i < chunk.size()) {
                    if (chunk[i] == 'F') {
                        state_ = State::matching;
                        matched_ = 1;
                        ++i;
                    } else {
                        state_ = State::body;  // the byte is handled there, '\n' included
                    }
                }
                break;
            }
            case State::matching:
                if (chunk[i] == from_prefix[matched_]) {
                    ++i;
                    if (++matched_ == from_prefix.size()) {
                        out += '>';
                        out += from_prefix;
                        state_ = State::body;
                    }
                } else {
                    out.append(from_prefix.substr(0, matched_));
                    state_ = State::body;
                }
                break;
        }
    }
    if (!chunk.empty()) at_line_start_ = chunk.back() == '\n';
}

void MboxEscaper::finish(std::string& out) {
    if (state_ == State::matching) out.append(from_prefix.substr(0, matched_));
    state_ = State::line_start;
    matched_ = 0;
}

Status MboxWriter::deliver(const Message& message, const DeliveryInfo& info) const {
    const std::string& path = info.path;
    core::UniqueFd fd;
    if (auto opened = open_mailbox(info, fd); !opened.is_ok()) return opened;

    // What the success text adds in parentheses: a repair, records ignored and why.
    std::vector<std::string> notes;
    const bool fcntl_in_order =
        std::find(info.locks.order.begin(), info.locks.order.end(), LockKind::fcntl) != info.locks.order.end();

    // Declared after fd: released before it is closed.
    std::optional<core::FileLock> file_lock;
    std::optional<core::DotLock> dot_lock;
    bool dotlock_bypassed = false;
    for (LockKind kind : info.locks.order) {
        if (kind == LockKind::fcntl && !file_lock) {
            auto lock = core::FileLock::acquire(fd.get(), info.locks.timeout);
            if (!lock) return lock_failure(info, lock.error());
            file_lock.emplace(std::move(*lock));
        } else if (kind == LockKind::dotlock && !dot_lock && !dotlock_bypassed) {
            core::DotLockOptions options{info.locks.timeout, info.locks.stale_dotlock_age, info.uid};
            auto lock = core::DotLock::acquire(path, options);
            if (!lock && lock.error().errno_value() == EEXIST) {
                // A lock that would be removed (stale, dead, or another user's) but that we
                // may not remove: another user's file in a sticky folder. Waiting would
                // hold the mail for ever, so the fcntl lock alone guards this delivery;
                // without one in mailbox_lock there is nothing safe to deliver under.
                if (!fcntl_in_order)
                    return Status::temp("4.2.0", fmt::format("cannot lock mailbox {}: {}, and mailbox_lock has no "
                                                             "fcntl lock to deliver under instead",
                                                             path, lock.error().context));
                notes.push_back("under the fcntl lock alone: " + lock.error().context);
                dotlock_bypassed = true;
                continue;
            }
            if (!lock) return lock_failure(info, lock.error());
            dot_lock.emplace(std::move(*lock));
        }
    }

    struct stat mailbox_st {};
    if (::fstat(fd.get(), &mailbox_st) != 0) return append_failure(path, core::errno_error("stat mailbox " + path));
    const core::FileId mailbox_id{mailbox_st.st_dev, mailbox_st.st_ino};

    // Crash repair: a dead writer's record tells how long the mailbox was before it.
    // Only records that cannot be a live writer's: a taken-over dotlock, or a sidecar
    // found while we hold the fcntl lock (the kernel dropped its writer's lock at death);
    // and only those judge_record() trusts: never a file another user could have made.
    const std::string sidecar = append_record_path(path);
    std::optional<uint64_t> dead_size;
    auto consider = [&](const FoundRecord& found) {
        RecordVerdict verdict = judge_record(found, mailbox_st, info.uid);
        if (!verdict.ignored.empty())
            notes.push_back(fmt::format("ignored crash-repair record {}: {}", found.path, verdict.ignored));
        if (verdict.cut_to) dead_size = dead_size ? std::min(*dead_size, *verdict.cut_to) : *verdict.cut_to;
    };
    // A lock broken only for being stale may still have a live writer appending: cutting
    // under it would tear a message it is about to report delivered. Only a gone PID counts.
    if (dot_lock && dot_lock->taken_over() && dot_lock->taken_over()->writer_gone) {
        const core::TakenOverLock& taken = *dot_lock->taken_over();
        consider(FoundRecord{dot_lock->path(), taken.record, "", taken.owner, taken.links});
    }
    if (file_lock) {
        if (auto leftover = read_append_record(sidecar)) consider(*leftover);
    }
    if (dead_size) {
        auto cut = cut_torn_tail(fd.get(), *dead_size, path);
        if (!cut) return append_failure(path, cut.error());
        if (*cut > 0) notes.insert(notes.begin(), fmt::format("first cut {} bytes left by an interrupted delivery", *cut));
    }

    auto size = file_size(fd.get(), path);
    if (!size) return append_failure(path, size.error());
    const uint64_t old_size = *size;
    const core::LockRecord record{::getpid(), old_size, mailbox_id};
    std::optional<SidecarGuard> sidecar_guard;
    if (dot_lock) {
        if (auto set = dot_lock->set_record(record); !set) return append_failure(path, set.error());
        if (file_lock) remove_append_record(sidecar);  // a leftover from an fcntl-only setup, now handled
    } else if (file_lock) {
        auto written = write_append_record(sidecar, record);
        int err = written ? 0 : written.error().errno_value();
        // A spool folder we may not create files in (or another user's sidecar in a
        // sticky folder) leaves us as safe as any classic MDA: deliver without a record
        // rather than not at all.
        if (written) {
            sidecar_guard.emplace(sidecar);
        } else if (err != EACCES && err != EPERM && err != EROFS) {
            return append_failure(path, written.error());
        }
    }

    // From here on, every failure puts the mailbox back to old_size.
    auto fail = [&](const core::Error& error) {
        // Truncate: readers must never see a partial message after a failed append.
        bool restored = ::ftruncate(fd.get(), static_cast<off_t>(old_size)) == 0;
        // fsync: the restored length must hold across a crash too.
        restored = restored && ::fsync(fd.get()) == 0;
        if (!restored && sidecar_guard) sidecar_guard->keep();
        return append_failure(path, error);
    };

    auto separator = separator_before(fd.get(), old_size, path);
    if (!separator) return fail(separator.error());
    std::string out = std::move(*separator);
    // Room for a small message whole (one write), at most one chunk's worth: the
    // loop below writes whenever a chunk is gathered. Reserved, not touched.
    out.reserve(static_cast<size_t>(std::min<uint64_t>(message.size(), chunk_size)) + chunk_size / 4 + 1024);
    out += mbox_from_line(info.sender, info.arrival);
    out += delivery_headers(info);

    // Not zero-filled: in a forked delivery child every page touched is a fault.
    std::unique_ptr<char[]> in(new char[chunk_size]);
    MboxEscaper escaper;
    auto reader = message.reader(OwnedFields::mbox);  // SPEC 4: no forged Return-Path/Content-Length
    for (;;) {
        auto n = reader.read(in.get(), chunk_size);
        if (!n) return fail(n.error());
        if (*n == 0) break;
        escaper.feed(std::string_view(in.get(), *n), out);
        if (out.size() >= chunk_size) {
            if (auto w = core::write_all(fd.get(), out, "mailbox " + path); !w) return fail(w.error());
            out.clear();
        }
    }
    escaper.finish(out);
    if (!escaper.at_line_start()) out += '\n';
    out += '\n';
    if (auto w = core::write_all(fd.get(), out, "mailbox " + path); !w) return fail(w.error());
    // fsync: the message must be on disk before we tell anyone it was delivered.
    if (auto s = core::fsync_fd(fd.get(), "mailbox " + path); !s) return fail(s.error());

    if (!notes.empty()) return Status::ok(fmt::format("delivered to mailbox ({})", fmt::join(notes, "; ")));
    return Status::ok("delivered to mailbox");
}

}  // namespace mailroom::mail
