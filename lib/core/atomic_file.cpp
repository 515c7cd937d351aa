#include "core/atomic_file.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <fmt/format.h>

#include "core/io.hpp"

namespace mailroom::core {
namespace {

// Unpredictable enough that another user cannot pre-create the name; O_EXCL makes
// a collision a retry, never a shared file.
uint32_t random_suffix(uint32_t attempt) {
    uint32_t value = 0;
    if (::getrandom(&value, sizeof value, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof value))
        value = static_cast<uint32_t>(::getpid()) * 2654435761u + attempt;
    return value;
}

std::string base_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

Result<TempFile> TempFile::create_for(const std::string& final_path, mode_t mode) {
    std::string base = base_of(final_path);
    if (base.empty()) return unexpected_errno("create temp file for " + final_path, EISDIR);
    std::string dir = dir_of(final_path);
    constexpr uint32_t max_attempts = 100;
    for (uint32_t attempt = 0; attempt < max_attempts; ++attempt) {
        std::string temp = fmt::format("{}/.{}.tmp.{}.{:08x}", dir, base, ::getpid(),
                                       random_suffix(attempt));
        UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                           mode & 07777));
        if (!fd) {
            if (errno == EEXIST) continue;
            return unexpected_errno("create " + temp);
        }
        TempFile file(std::move(fd), std::move(temp), final_path);
        // The umask narrowed the mode at open(); set it exactly.
        if (::fchmod(file.fd(), mode & 07777) != 0) return unexpected_errno("chmod " + file.path());
        return file;
    }
    return unexpected_errno("create temp file for " + final_path, EEXIST);
}

TempFile::TempFile(TempFile&& other) noexcept
    : fd_(std::move(other.fd_)),
      temp_path_(std::exchange(other.temp_path_, {})),
      final_path_(std::move(other.final_path_)) {}

TempFile& TempFile::operator=(TempFile&& other) noexcept {
    if (this != &other) {
        discard();
        fd_ = std::move(other.fd_);
        temp_path_ = std::exchange(other.temp_path_, {});
        final_path_ = std::move(other.final_path_);
    }
    return *this;
}

TempFile::~TempFile() { discard(); }

void TempFile::discard() {
    fd_.reset();
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
    temp_path_.clear();
}

Result<void> TempFile::write(std::string_view data) {
    if (!fd_) return unexpected_errno("write " + final_path_, EBADF);
    return write_all(fd_.get(), data, temp_path_);
}

Result<void> TempFile::commit() {
    if (!fd_ || temp_path_.empty()) return unexpected_errno("commit " + final_path_, EBADF);
    // Without it a crash after the rename can leave final_path empty or short:
    // the rename may reach the disk before the data does (ext4 delayed allocation).
    if (auto r = fsync_fd(fd_.get(), temp_path_); !r) {
        discard();
        return r;
    }
    // close() reports write-back errors on NFS that fsync may not have.
    if (auto r = fd_.close(); !r) {
        discard();
        return unexpected(Error{r.error().code, "close " + temp_path_});
    }
    // The atomic step: readers and a crash see the old file or the new, never a mix.
    if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
        int err = errno;
        discard();
        return unexpected_errno("rename " + temp_path_ + " to " + final_path_, err);
    }
    temp_path_.clear();  // the name now belongs to final_path: nothing to remove
    // Without it a crash can undo the rename and bring the old file back after we
    // reported success.
    return fsync_dir(dir_of(final_path_));
}

Result<void> write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
    auto file = TempFile::create_for(path, mode);
    if (!file) return unexpected(file.error());
    if (auto r = file->write(content); !r) return r;  // ~TempFile removes the temp file
    return file->commit();
}

}  // namespace mailroom::core
