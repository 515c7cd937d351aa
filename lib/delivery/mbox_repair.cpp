#include "delivery/mbox_repair.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include <fmt/format.h>

#include "core/io.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::mail {

namespace {

constexpr std::string_view from_prefix = "From ";
constexpr size_t scan_chunk = 64 * 1024;

// Scans the tail for the shape of one torn message of ours: it starts with (a prefix
// of) "From ", after at most two newlines (the separator we write when the mailbox did
// not end with an empty line), and no later line starts with "From " (our body lines
// that do are quoted, so such a line is another writer's message).
core::Result<bool> tail_is_one_message(int fd, uint64_t from, uint64_t to, const std::string& path) {
    std::string buf(scan_chunk, '\0');
    uint64_t offset = from;
    size_t matched = 0;      // bytes of "From " matched at the current line start
    bool matching = true;    // still inside a line start that could be "From "
    bool first_line = true;
    size_t leading_newlines = 0;
    while (offset < to) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(to - offset, buf.size()));
        auto n = core::pread_full(fd, buf.data(), want, static_cast<off_t>(offset), "mailbox " + path);
        if (!n) return core::unexpected(n.error());
        if (*n == 0) break;
        for (size_t i = 0; i < *n; ++i) {
            char c = buf[i];
            if (first_line && matched == 0 && c == '\n' && leading_newlines < 2) {
                ++leading_newlines;
                continue;
            }
            if (matching) {
                if (c == from_prefix[matched]) {
                    if (++matched == from_prefix.size()) {
                        if (!first_line) return false;
                        matching = false;
                    }
                    continue;
                }
                if (first_line) return false;
                matching = false;
            }
            if (c == '\n') {
                first_line = false;
                matching = true;
                matched = 0;
            }
        }
        offset += *n;
    }
    return true;
}

}  // namespace

std::string append_record_path(const std::string& mailbox_path) {
    return mailbox_path + ".mailroom-append";
}

RecordVerdict judge_record(const FoundRecord& found, const struct stat& mailbox, uid_t owner) {
    RecordVerdict verdict;
    const core::FileId mailbox_id{mailbox.st_dev, mailbox.st_ino};
    const uint64_t mailbox_size = static_cast<uint64_t>(mailbox.st_size);
    if (!found.unreadable.empty()) {
        verdict.ignored = found.unreadable;
    } else if (found.owner != owner && found.owner != 0) {
        verdict.ignored = fmt::format("owned by uid {}", found.owner);
    } else if (found.links != 1) {
        verdict.ignored = fmt::format("has {} links", found.links);
    } else if (!found.record) {
        verdict.ignored = "cannot be parsed";
    } else if (!found.record->size) {
        // A dotlock whose writer died before it knew the size: it appended nothing.
    } else if (!found.record->file) {
        verdict.ignored = "old format without the mailbox's device and inode";
    } else if (!(*found.record->file == mailbox_id)) {
        verdict.ignored = fmt::format("written for another file (device {}, inode {})",
                                      static_cast<uint64_t>(found.record->file->dev),
                                      static_cast<uint64_t>(found.record->file->ino));
    } else if (*found.record->size > mailbox_size) {
        verdict.ignored = fmt::format("offset {} is past the end of the mailbox ({} bytes)", *found.record->size,
                                      mailbox_size);
    } else {
        verdict.cut_to = *found.record->size;
    }
    return verdict;
}

std::optional<FoundRecord> read_append_record(const std::string& sidecar_path) {
    FoundRecord found;
    found.path = sidecar_path;
    auto file = core::read_record_file(sidecar_path);
    if (!file) {
        found.unreadable = "cannot be examined (" + file.error().message() + ")";
        return found;
    }
    if (!*file) return std::nullopt;
    found.owner = (*file)->st.st_uid;
    found.links = (*file)->st.st_nlink;
    found.record = (*file)->record;
    found.unreadable = (*file)->unreadable;
    return found;
}

core::Result<void> write_append_record(const std::string& sidecar_path, const core::LockRecord& record) {
    // Unlink first and create with O_EXCL: never write through a planted link.
    if (::unlink(sidecar_path.c_str()) != 0 && errno != ENOENT)
        return core::unexpected_errno("remove " + sidecar_path);
    core::UniqueFd fd(::open(sidecar_path.c_str(),
                             O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
    if (!fd) return core::unexpected_errno("create " + sidecar_path);
    auto written = core::write_all(fd.get(), core::format_lock_record(record), sidecar_path);
    if (!written) {
        ::unlink(sidecar_path.c_str());
        return written;
    }
    return fd.close();
}

void remove_append_record(const std::string& sidecar_path) {
    ::unlink(sidecar_path.c_str());
}

core::Result<uint64_t> cut_torn_tail(int fd, uint64_t old_size, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return core::unexpected_errno("stat mailbox " + path);
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size <= old_size) return uint64_t{0};  // nothing appended, or the mailbox was rewritten
    auto ours = tail_is_one_message(fd, old_size, size, path);
    if (!ours) return core::unexpected(ours.error());
    if (!*ours) return uint64_t{0};
    if (::ftruncate(fd, static_cast<off_t>(old_size)) != 0)
        return core::unexpected_errno("truncate mailbox " + path);
    // fsync: a crash right after the repair must not bring the torn tail back under the
    // message we are about to append.
    auto synced = core::fsync_fd(fd, "mailbox " + path);
    if (!synced) return core::unexpected(synced.error());
    return size - old_size;
}

}  // namespace mailroom::mail
