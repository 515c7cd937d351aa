#include "core/file_lock.hpp"

#include <fcntl.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace mailroom::core {

namespace {

// Under contention (the daemon's workers delivering to one busy mailbox) a waiter must
// notice a released lock within a delivery's time (~1-2 ms of write + fsync), not 50 ms.
constexpr std::chrono::microseconds max_sleep{10'000};

int set_lock(int fd, short type) {
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0;  // to the end of the file, however far it grows
    for (;;) {
        if (::fcntl(fd, F_SETLK, &fl) == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

}  // namespace

LockBackoff::LockBackoff(std::chrono::milliseconds timeout)
    : deadline_(std::chrono::steady_clock::now() + timeout) {}

bool LockBackoff::wait() {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline_) return false;
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline_ - now);
    auto pause = std::min(next_, left);
    next_ = std::min(next_ * 2, max_sleep);
    struct timespec ts {};
    ts.tv_sec = static_cast<time_t>(pause.count() / 1'000'000);
    ts.tv_nsec = static_cast<long>(pause.count() % 1'000'000) * 1000;
    // An interrupted sleep just makes this attempt come early; the deadline still holds.
    ::nanosleep(&ts, nullptr);
    return true;
}

Result<FileLock> FileLock::acquire(int fd, std::chrono::milliseconds timeout) {
    LockBackoff backoff(timeout);
    for (;;) {
        if (set_lock(fd, F_WRLCK) == 0) return FileLock(fd);
        // POSIX allows either EACCES or EAGAIN for "held by another process".
        if (errno != EACCES && errno != EAGAIN) return unexpected_errno("fcntl lock");
        if (!backoff.wait()) return unexpected_errno("fcntl lock: timed out", EWOULDBLOCK);
    }
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
    if (this != &other) {
        release();
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

void FileLock::release() {
    int fd = std::exchange(fd_, -1);
    if (fd >= 0) set_lock(fd, F_UNLCK);
}

}  // namespace mailroom::core
