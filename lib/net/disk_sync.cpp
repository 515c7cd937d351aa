#include "net/disk_sync.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

// g++ 12 warns of a mismatched new/delete inside Asio's coroutine frames, wrongly.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace mailroom::net {

namespace asio = boost::asio;

namespace {
// Requests the kernel holds at once; past it a sync runs in place (io_submit: EAGAIN).
constexpr unsigned aio_depth = 256;
}  // namespace

void DiskSync::Waiter::finish(int error_number) {
    if (done) return;
    done = true;
    error = error_number;
    timer.cancel();
}

DiskSync::DiskSync(asio::any_io_executor executor, Mode mode)
    : executor_(executor), completions_(executor), alive_(std::make_shared<bool>(true)) {
    if (mode == Mode::in_place) return;
    int eventfd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (eventfd < 0) return;
    completions_.assign(eventfd);
    aio_.emplace(aio_depth, eventfd);
    if (!aio_->usable()) aio_.reset();  // in place, then
}

DiskSync::~DiskSync() {
    *alive_ = false;
    // Blocks until the kernel finished the syncs it holds (they cannot be cancelled).
    aio_.reset();
    // Nobody will hear of them now: their callers learn the commit failed, which is
    // what they say when a sync is not known to be done (nothing was queued).
    auto in_flight = std::move(in_flight_);
    for (auto& [request, done] : in_flight) done(ECANCELED);
    for (auto& [folder, group] : folders_) {
        for (auto& [ticket, waiter] : group.waiting) waiter->finish(ECANCELED);
    }
}

asio::awaitable<int> DiskSync::wait(std::shared_ptr<Waiter> waiter) {
    // Checked first: a sync run in place may be done already, and a cancel() with no
    // wait pending would be lost.
    if (!waiter->done) co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return waiter->done ? waiter->error : ECANCELED;
}

void DiskSync::start(int fd, bool data_only, Done done) {
    ++(data_only ? data_syncs_ : folder_syncs_);
    const uint64_t request = next_request_++;
    if (aio_ && aio_->submit_sync(fd, data_only, request)) {
        in_flight_.emplace(request, std::move(done));
        watch_completions();
        return;
    }
    // No AIO; or the kernel would not take this one (EAGAIN: its context is full;
    // EINVAL: no asynchronous fsync before 4.18, or a file without fsync; EBADF):
    // in place, which says which it was.
    int error_number = core::sync_in_place(fd, data_only);
    // Posted, not called: the caller finishes registering before anyone is woken.
    asio::post(executor_, [alive = alive_, done = std::move(done), error_number] {
        if (*alive) done(error_number);
    });
}

void DiskSync::watch_completions() {
    // Watched only while syncs are in flight, so that an idle loop can end.
    if (watching_ || in_flight_.empty()) return;
    watching_ = true;
    completions_.async_wait(asio::posix::stream_descriptor::wait_read,
                            [this, alive = alive_](const boost::system::error_code& error) {
                                if (!*alive) return;
                                watching_ = false;
                                take_completions(error.failed());
                                watch_completions();
                            });
}

void DiskSync::take_completions(bool block) {
    uint64_t signalled = 0;
    (void)!::read(completions_.native_handle(), &signalled, sizeof signalled);  // resets the count
    core::KernelAio::Completion done[64];
    while (!in_flight_.empty()) {
        // Blocking only when the eventfd cannot be watched any more (it never fails
        // in practice): the syncs' callers are still owed an answer.
        size_t got = aio_->collect(done, block ? in_flight_.size() : 0);
        if (got == 0) break;
        for (size_t i = 0; i < got; ++i) {
            auto found = in_flight_.find(done[i].tag);
            if (found == in_flight_.end()) continue;
            Done callback = std::move(found->second);
            in_flight_.erase(found);
            callback(done[i].error);
        }
        if (got < std::size(done)) break;
    }
}

asio::awaitable<core::Result<void>> DiskSync::sync_data(int fd, std::string what) {
    auto waiter = std::make_shared<Waiter>(executor_);
    start(fd, true, [waiter](int error_number) { waiter->finish(error_number); });
    if (int error_number = co_await wait(waiter); error_number != 0) {
        co_return core::unexpected_errno("fsync " + what, error_number);
    }
    co_return core::Result<void>{};
}

asio::awaitable<core::Result<void>> DiskSync::sync_folder(int folder, std::string what) {
    FolderGroup& group = folders_[folder];
    auto waiter = std::make_shared<Waiter>(executor_);
    group.waiting.emplace_back(++group.announced, waiter);
    // One running began before this rename: it does not count, the next one will.
    if (!group.running) start_folder_sync(folder);
    if (int error_number = co_await wait(waiter); error_number != 0) {
        co_return core::unexpected_errno("fsync folder " + what, error_number);
    }
    co_return core::Result<void>{};
}

void DiskSync::start_folder_sync(int folder) {
    FolderGroup& group = folders_[folder];
    group.running = true;
    const uint64_t covering = group.announced;  // every rename announced before this fsync starts
    start(folder, false, [this, alive = alive_, folder, covering](int error_number) {
        if (!*alive) return;
        FolderGroup& done_group = folders_[folder];
        done_group.running = false;
        std::vector<std::pair<uint64_t, std::shared_ptr<Waiter>>> later;
        for (auto& [ticket, waiter] : done_group.waiting) {
            if (ticket <= covering) {
                waiter->finish(error_number);
            } else {
                later.emplace_back(ticket, std::move(waiter));
            }
        }
        done_group.waiting = std::move(later);
        if (!done_group.waiting.empty()) start_folder_sync(folder);
    });
}

}  // namespace mailroom::net
