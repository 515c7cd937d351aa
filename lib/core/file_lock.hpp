// FileLock: an exclusive classic POSIX fcntl (F_SETLK, F_WRLCK) lock on a whole open
// file, taken with a deadline and released by the destructor.
//
// Owns: the lock, not the fd. The fd must outlive the FileLock (declare the lock after
// the UniqueFd). Invariants: a FileLock that exists holds the lock.
// Must never: sleep in whole seconds (peers do; we retry from 1 ms up to 10 ms, which is
// how we win a contended mailbox), block without a deadline (F_SETLKW), or throw.
//
// Classic POSIX locks belong to the *process*: they do not exclude threads of the same
// process, and closing *any* fd of the file in this process drops them. So a process
// delivers to one mailbox from one thread at a time and does not open the mailbox
// elsewhere while it holds the lock. They are dropped by the kernel when the process
// dies, which is what lets the next writer trust that a leftover append record under
// this lock is a dead writer's (see docs/mbox.md).
#pragma once

#include <chrono>

#include "core/result.hpp"

namespace mailroom::core {

class FileLock {
public:
    // Locks the whole of fd for writing, retrying until timeout has passed.
    // On timeout: an Error with code EWOULDBLOCK ("... timed out"); other failures
    // (ENOLCK, EBADF, ...) are returned at once with their errno.
    static Result<FileLock> acquire(int fd, std::chrono::milliseconds timeout);

    FileLock(FileLock&& other) noexcept;
    FileLock& operator=(FileLock&& other) noexcept;
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;
    ~FileLock() { release(); }

    // Unlocks now (idempotent); errors are ignored: closing the fd unlocks anyway.
    void release();
    bool held() const { return fd_ >= 0; }

private:
    explicit FileLock(int fd) : fd_(fd) {}
    int fd_ = -1;
};

// The retry schedule shared by FileLock and DotLock: sleeps that start at 1 ms and double
// up to 10 ms, never past the deadline. Returns false (without sleeping) once the
// deadline has passed.
class LockBackoff {
public:
    explicit LockBackoff(std::chrono::milliseconds timeout);
    bool wait();

private:
    std::chrono::steady_clock::time_point deadline_;
    std::chrono::microseconds next_{1000};
};

}  // namespace mailroom::core
