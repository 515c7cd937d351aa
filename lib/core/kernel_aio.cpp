#include "core/kernel_aio.hpp"

#include <linux/aio_abi.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <vector>

namespace mailroom::core {

namespace {

// glibc has no wrappers for these.
long io_setup(unsigned depth, aio_context_t* context) { return ::syscall(SYS_io_setup, depth, context); }
long io_destroy(aio_context_t context) { return ::syscall(SYS_io_destroy, context); }
long io_submit(aio_context_t context, long count, struct iocb** requests) {
    return ::syscall(SYS_io_submit, context, count, requests);
}
long io_getevents(aio_context_t context, long least, long most, struct io_event* events, struct timespec* timeout) {
    return ::syscall(SYS_io_getevents, context, least, most, events, timeout);
}

}  // namespace

int sync_in_place(int fd, bool data_only) { return (data_only ? ::fdatasync(fd) : ::fsync(fd)) == 0 ? 0 : errno; }

KernelAio::KernelAio(unsigned depth, int eventfd) : eventfd_(eventfd), owner_(::getpid()) {
    aio_context_t context = 0;
    if (io_setup(depth, &context) == 0) context_ = context;
}

KernelAio::~KernelAio() {
    if (usable()) io_destroy(context_);
}

bool KernelAio::usable() const { return context_ != 0 && owner_ == ::getpid(); }

bool KernelAio::submit_sync(int fd, bool data_only, uint64_t tag) {
    if (!usable()) {
        errno = ENOSYS;
        return false;
    }
    struct iocb order {};
    order.aio_data = tag;
    order.aio_lio_opcode = data_only ? IOCB_CMD_FDSYNC : IOCB_CMD_FSYNC;
    order.aio_fildes = static_cast<uint32_t>(fd);
    if (eventfd_ >= 0) {
        order.aio_flags = IOCB_FLAG_RESFD;
        order.aio_resfd = static_cast<uint32_t>(eventfd_);
    }
    struct iocb* orders[1] = {&order};
    return io_submit(context_, 1, orders) == 1;
}

size_t KernelAio::collect(std::span<Completion> out, size_t least) {
    if (!usable() || out.empty()) return 0;
    constexpr size_t batch = 64;
    struct io_event events[batch];
    struct timespec no_wait {};
    size_t got = 0;
    while (got < out.size()) {
        const long most = static_cast<long>(std::min(batch, out.size() - got));
        const long wanted = static_cast<long>(std::min(least > got ? least - got : 0, static_cast<size_t>(most)));
        long n = io_getevents(context_, wanted, most, events, wanted > 0 ? nullptr : &no_wait);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (long i = 0; i < n; ++i) {
            out[got++] = Completion{events[i].data, events[i].res < 0 ? static_cast<int>(-events[i].res) : 0};
        }
        if (got >= least && n < most) break;
    }
    return got;
}

void sync_all(std::span<SyncOrder> orders) {
    // One context per process, made at its first batch: a context does not survive
    // a fork, and this runs in forked delivery agents.
    // Alone, an order has nothing to overlap with: no context is made for it.
    static std::optional<KernelAio> aio;
    const bool together = orders.size() > 1;
    if (together && (!aio || !aio->usable())) aio.emplace(64);
    size_t in_flight = 0;
    for (size_t i = 0; i < orders.size(); ++i) {
        if (together && aio->submit_sync(orders[i].fd, orders[i].data_only, i)) {
            // Failed until the kernel says otherwise.
            orders[i].error = EINPROGRESS;
            ++in_flight;
        } else {
            // Alone, or refused by the kernel: here and now.
            orders[i].error = sync_in_place(orders[i].fd, orders[i].data_only);
        }
    }
    std::vector<KernelAio::Completion> done(in_flight);
    size_t collected = 0;
    while (collected < in_flight) {
        size_t n = aio->collect(std::span(done).subspan(collected), in_flight - collected);
        if (n == 0) break;  // cannot happen while syncs are in flight; never spin
        collected += n;
    }
    for (size_t i = 0; i < collected; ++i) orders[done[i].tag].error = done[i].error;
}

}  // namespace mailroom::core
