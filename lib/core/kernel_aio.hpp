// KernelAio: the kernel's own asynchronous I/O (io_setup, io_submit, io_getevents),
// used here for one thing: fsync and fdatasync that run while the caller goes on
// (IOCB_CMD_FSYNC / IOCB_CMD_FDSYNC, on any file system since Linux 4.18; the kernel
// runs each in a worker of its own, so several overlap). Not glibc's aio_* (threads:
// a process that forks must not run any, ARCHITECTURE.md).
//
// sync_all() is the blocking form for a process that has several files to make
// durable at once (a delivery agent's batch): all submitted together, all waited for.
// Invariants: a completion is reported once, with the kernel's outcome; a context
// belongs to the process that made it (the kernel does not copy it into a fork: there
// it is not usable(), and its end leaves the parent's alone; sync_all makes one per process).
// Must never: report a sync done before the kernel did.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace mailroom::core {

class KernelAio {
public:
    // Room for `depth` requests at once; completions also signal `eventfd` when it is
    // a descriptor (so that an event loop can watch it). Without a context (io_setup
    // refused: fs.aio-max-nr reached, a seccomp filter), usable() is false.
    explicit KernelAio(unsigned depth, int eventfd = -1);
    // Waits for the syncs still in flight (they cannot be cancelled).
    ~KernelAio();
    KernelAio(const KernelAio&) = delete;
    KernelAio& operator=(const KernelAio&) = delete;

    bool usable() const;
    // Hands the kernel fdatasync (data_only) or fsync of `fd`, tagged. False, errno
    // set, when it will not take it (EAGAIN: full; EINVAL: no asynchronous fsync in
    // this kernel, or a file without fsync; EBADF): the caller syncs in place.
    bool submit_sync(int fd, bool data_only, uint64_t tag);

    struct Completion {
        uint64_t tag = 0;
        int error = 0;  // 0: done; else the errno of the sync
    };
    // Completions, at most out.size(): those ready now when `least` is 0, else
    // blocks until at least `least` (no more than are in flight).
    size_t collect(std::span<Completion> out, size_t least);

private:
    int eventfd_;
    uint64_t context_ = 0;  // the kernel's aio_context_t; 0: none
    int owner_ = 0;         // the pid that made it
};

// One file to make durable, and how it went.
struct SyncOrder {
    int fd = -1;
    bool data_only = true;  // fdatasync; false: fsync (a folder)
    int error = 0;          // set by sync_all: 0 or the errno
};
// fdatasync (data_only) or fsync of `fd`, here and now: 0 or the errno. What every
// sync falls back to when the kernel will not run it asynchronously.
int sync_in_place(int fd, bool data_only);

// Syncs every order at once (kernel AIO when there is any, else one after another)
// and returns when all are done.
void sync_all(std::span<SyncOrder> orders);

}  // namespace mailroom::core
