#include "delivery/maildir_writer.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/io.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::mail {

namespace {

constexpr size_t chunk_size = 64 * 1024;
// Name collisions need a clock step back plus pid reuse; a few fresh names suffice.
constexpr int name_attempts = 8;
// Maildir rule: a tmp/ file untouched for 36 hours is a leftover of a crashed delivery.
constexpr time_t tmp_max_age = 36 * 60 * 60;
// A process sweeps one tmp/ at most this often (seconds).
constexpr time_t tmp_sweep_interval = 60 * 60;

// A system failure while delivering: temporary, classified by errno (ENOSPC 4.3.1, ...).
Status failure(std::string context, int err = errno) {
    return Status::from_error(core::errno_error(std::move(context), err));
}

// A folder we will not write into; 4.2.0 so the mail waits in the queue for the admin.
Status refusal(std::string text) { return Status::temp("4.2.0", std::move(text)); }

std::string strip_trailing_slashes(std::string path) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return path;
}

// Owns a DIR stream (closedir on every path out).
struct DirStream {
    DIR* dir;
    ~DirStream() {
        if (dir) ::closedir(dir);
    }
};

// Opens one Maildir folder `name` inside at_fd without following a symlink,
// creating it (0700, the user's) when it is missing, and checks that it belongs to
// info.uid. On success `out` holds the folder and `created` says whether it is new:
// the caller then fsyncs at_fd, once for all the folders it made there.
std::optional<Status> open_folder(int at_fd, const std::string& name, const std::string& shown,
                                  const DeliveryInfo& info, core::UniqueFd& out, bool& created) {
    constexpr int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    // Opened first, made only when missing: a delivery into an existing Maildir (all
    // but the first) makes no mkdir that fails with EEXIST.
    core::UniqueFd fd(::openat(at_fd, name.c_str(), flags));
    created = false;
    if (!fd && errno == ENOENT) {
        created = ::mkdirat(at_fd, name.c_str(), 0700) == 0;
        if (!created && errno != EEXIST) return failure("create folder " + shown);
        fd.reset(::openat(at_fd, name.c_str(), flags));
    }
    if (!fd) {
        int err = errno;
        struct stat st;
        if ((err == ELOOP || err == ENOTDIR) &&
            ::fstatat(at_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (S_ISLNK(st.st_mode))
                return refusal("maildir " + shown + " is a symbolic link: refusing to deliver through it");
            return refusal("maildir " + shown + " is not a folder");
        }
        return failure("open folder " + shown, err);
    }
    // Root delivers on the user's behalf: what it creates must belong to the user.
    if (created && ::geteuid() == 0 && ::fchown(fd.get(), info.uid, info.gid) != 0)
        return failure("chown folder " + shown);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return failure("stat folder " + shown);
    if (st.st_uid != info.uid)
        return refusal(fmt::format("maildir {} is owned by uid {}, not by the recipient's uid {}",
                                   shown, st.st_uid, info.uid));
    out = std::move(fd);
    return std::nullopt;
}

// fsync of a folder that got new folders: a crash must not lose them, nor mail
// linked into them later.
std::optional<Status> sync_if(bool created, int folder_fd, const std::string& shown) {
    if (!created) return std::nullopt;
    if (auto synced = core::fsync_fd(folder_fd, "folder " + shown); !synced) return Status::from_error(synced.error());
    return std::nullopt;
}

// Whether `tmp_path` is due for its sweep in this process: at most once an hour, as a
// long-lived delivery agent writes the same Maildir again and again and tmp/ holds
// only files older than 36 hours worth removing. By path: no system call a delivery.
bool sweep_due(const std::string& tmp_path) {
    static std::map<std::string, time_t> swept;
    const time_t now = ::time(nullptr);
    if (auto it = swept.find(tmp_path); it != swept.end() && it->second <= now && now - it->second < tmp_sweep_interval)
        return false;
    if (swept.size() >= 4096) swept.clear();  // an agent serves one user: not reached in practice
    swept[tmp_path] = now;
    return true;
}

// Removes regular files in tmp/ neither read nor written for 36 hours. Cheap because
// tmp/ is normally empty; never follows symlinks; errors are ignored (housekeeping only).
void remove_stale_tmp(int tmp_fd) {
    int fd = ::openat(tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    DirStream stream{::fdopendir(fd)};
    if (!stream.dir) {
        ::close(fd);
        return;
    }
    const time_t cutoff = ::time(nullptr) - tmp_max_age;
    while (const dirent* entry = ::readdir(stream.dir)) {
        struct stat st;
        if (::fstatat(tmp_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (!S_ISREG(st.st_mode)) continue;
        // Both times: atime is the Maildir rule, mtime still works on noatime mounts.
        if (st.st_atime >= cutoff || st.st_mtime >= cutoff) continue;
        ::unlinkat(tmp_fd, entry->d_name, 0);
    }
}

// Writes headers then the content in 64 KB chunks; fails if the byte count differs from
// the size promised in the name's S=.
core::Result<void> write_file(int fd, const std::string& headers, const Message& message,
                              std::uint64_t expected, const std::string& shown) {
    if (auto written = core::write_all(fd, headers, shown); !written) return written;
    std::uint64_t total = headers.size();
    // Not zero-filled: in a forked delivery child every page touched is a fault.
    std::unique_ptr<char[]> buf(new char[chunk_size]);
    auto reader = message.reader(OwnedFields::return_path);
    for (;;) {
        auto n = reader.read(buf.get(), chunk_size);
        if (!n) return core::unexpected(n.error());
        if (*n == 0) break;
        if (auto written = core::write_all(fd, std::string_view(buf.get(), *n), shown); !written)
            return written;
        total += *n;
    }
    if (total != expected) return core::unexpected_errno("write " + shown + ": size is not S=", EIO);
    return {};
}

}  // namespace

std::string maildir_host(std::string_view hostname) {
    std::string host(hostname);
    if (host.empty()) {
        char buf[HOST_NAME_MAX + 1] = {};
        host = ::gethostname(buf, sizeof buf - 1) == 0 && buf[0] ? buf : "localhost";
    }
    std::string escaped;
    escaped.reserve(host.size());
    for (char c : host) {
        if (c == '/') escaped += "\\057";
        else if (c == ':') escaped += "\\072";
        else escaped += c;
    }
    return escaped;
}

std::string maildir_unique_name(std::string_view escaped_host, std::uint64_t size) {
    // The one process-wide state: Maildir names are unique per process only if every
    // writer in the process draws from the same counter (pid separates processes).
    static std::atomic<std::uint64_t> counter{0};
    const std::uint64_t n = ++counter;
    struct timespec now;
    ::clock_gettime(CLOCK_REALTIME, &now);
    return fmt::format("{}.M{}P{}Q{}.{},S={}", static_cast<long long>(now.tv_sec),
                       now.tv_nsec / 1000, ::getpid(), n, escaped_host, size);
}

Status MaildirWriter::deliver(const Message& message, const DeliveryInfo& info) const {
    return deliver(message, info, nullptr);
}

Status MaildirWriter::deliver(const Message& message, const DeliveryInfo& info,
                              std::string* delivered_path) const {
    MaildirDelivery delivery;
    if (Status staged = delivery.stage(message, info); !staged.is_ok()) return staged;
    // fsync the data: a crash after we report success must not leave new/NAME empty or short.
    if (Status published = delivery.publish(core::fsync_fd(delivery.data_fd(), delivery.tmp_shown()));
        !published.is_ok())
        return published;
    // fsync new/: a crash after we report success must not lose the new/NAME entry.
    return delivery.settle(core::fsync_fd(delivery.new_folder_fd(), delivery.new_folder_shown()), delivered_path);
}

MaildirDelivery::MaildirDelivery(MaildirDelivery&& other) noexcept
    : folder_(std::move(other.folder_)), host_(std::move(other.host_)), name_(std::move(other.name_)),
      new_name_(std::move(other.new_name_)), size_(other.size_), tmp_(std::move(other.tmp_)),
      fresh_(std::move(other.fresh_)), file_(std::move(other.file_)),
      tmp_armed_(std::exchange(other.tmp_armed_, false)) {}

MaildirDelivery::~MaildirDelivery() { remove_tmp(); }

void MaildirDelivery::remove_tmp() {
    if (tmp_armed_) ::unlinkat(tmp_.get(), name_.c_str(), 0);
    tmp_armed_ = false;
}

Status MaildirDelivery::stage(const Message& message, const DeliveryInfo& info) {
    folder_ = strip_trailing_slashes(info.path);
    const auto slash = folder_.rfind('/');
    const std::string base = slash == std::string::npos ? folder_ : folder_.substr(slash + 1);
    if (base.empty() || base == "." || base == "..")
        return Status::temp("4.3.5", "maildir path \"" + info.path + "\" names no folder");

    const std::string parent_path = core::dir_of(folder_);
    core::UniqueFd parent(::open(parent_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent) return failure("open folder " + parent_path);

    core::UniqueFd top, cur;
    bool made_top = false, made_tmp = false, made_new = false, made_cur = false;
    if (auto refused = open_folder(parent.get(), base, folder_, info, top, made_top)) return *refused;
    if (auto refused = sync_if(made_top, parent.get(), parent_path)) return *refused;
    if (auto refused = open_folder(top.get(), "tmp", folder_ + "/tmp", info, tmp_, made_tmp)) return *refused;
    if (auto refused = open_folder(top.get(), "new", folder_ + "/new", info, fresh_, made_new)) return *refused;
    if (auto refused = open_folder(top.get(), "cur", folder_ + "/cur", info, cur, made_cur)) return *refused;
    if (auto refused = sync_if(made_tmp || made_new || made_cur, top.get(), folder_)) return *refused;

    if (sweep_due(folder_ + "/tmp")) remove_stale_tmp(tmp_.get());

    const std::string headers = delivery_headers(info);
    // The message's own Return-Path: is left out (we write the real one): S= counts
    // what is written.
    auto content_size = message.size_without(OwnedFields::return_path);
    if (!content_size) return Status::from_error(content_size.error());
    size_ = headers.size() + *content_size;
    host_ = maildir_host(info.hostname);

    for (int attempt = 0; attempt < name_attempts && !file_; ++attempt) {
        name_ = maildir_unique_name(host_, size_);
        file_.reset(::openat(tmp_.get(), name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!file_ && errno != EEXIST) return failure("create " + folder_ + "/tmp/" + name_);
    }
    if (!file_) return failure("create a unique name in " + folder_ + "/tmp", EEXIST);
    tmp_armed_ = true;  // from here on, every failure removes it

    if (::geteuid() == 0 && ::fchown(file_.get(), info.uid, info.gid) != 0) return failure("chown " + tmp_shown());
    if (auto written = write_file(file_.get(), headers, message, size_, tmp_shown()); !written)
        return Status::from_error(written.error());
    return Status::ok("staged in maildir tmp/");
}

Status MaildirDelivery::publish(core::Result<void> data_synced) {
    // Without its data on disk the file must not get a name in new/.
    if (!data_synced) return Status::from_error(data_synced.error());
    if (auto closed = file_.close(); !closed) return failure("close " + tmp_shown(), closed.error().errno_value());
    new_name_ = name_;
    for (int attempt = 0;; ++attempt) {
        // link, not rename: link fails on a name that exists, rename would silently
        // replace another message there. A crash leaves the mail in tmp/ or new/ or both.
        if (::linkat(tmp_.get(), name_.c_str(), fresh_.get(), new_name_.c_str(), 0) == 0) break;
        if (errno != EEXIST || attempt + 1 >= name_attempts)
            return failure("link " + tmp_shown() + " into " + folder_ + "/new");
        new_name_ = maildir_unique_name(host_, size_);
    }
    return Status::ok("linked into maildir new/");
}

Status MaildirDelivery::settle(core::Result<void> new_synced, std::string* delivered_path) {
    if (!new_synced) {
        // Undo so that the retry that follows this temporary failure does not duplicate.
        ::unlinkat(fresh_.get(), new_name_.c_str(), 0);
        return Status::from_error(new_synced.error());
    }
    // Drop the tmp/ name: the mail lives in new/ now. A crash here leaves a leftover
    // that a later delivery sweeps after 36 hours; it never becomes a second copy.
    remove_tmp();
    if (delivered_path) *delivered_path = folder_ + "/new/" + new_name_;
    return Status::ok("delivered to maildir");
}

std::string MaildirDelivery::tmp_shown() const { return folder_ + "/tmp/" + name_; }
std::string MaildirDelivery::new_folder_shown() const { return "folder " + folder_ + "/new"; }

}  // namespace mailroom::mail
