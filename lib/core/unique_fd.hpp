// UniqueFd: sole owner of one file descriptor. The destructor closes and ignores
// errors; a caller that must see a close error (data written through the fd) calls
// close() and checks it, as qmail-local does.
#pragma once

#include <unistd.h>

#include <utility>

#include "core/result.hpp"

namespace mailroom::core {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    explicit operator bool() const { return valid(); }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }
    // Close and report the error (EIO, ENOSPC on NFS...) instead of dropping it.
    Result<void> close() {
        int fd = std::exchange(fd_, -1);
        if (fd >= 0 && ::close(fd) != 0 && errno != EINTR) return unexpected_errno("close");
        return {};
    }

private:
    int fd_ = -1;
};

}  // namespace mailroom::core
