// DiskSync: fdatasync and fsync that do not block the event loop, for the SMTP
// sessions that commit messages into the queue (mta/smtp_door.cpp), one per loop.
//
// Why: a sessions process that waits in fdatasync and in the fsync of queue/ for
// each message in turn serves one commit at a time, however many clients send (on
// a disk without a journal, each sync is a flush of the device). Here the kernel
// runs the syncs (Linux AIO: IOCB_CMD_FDSYNC and IOCB_CMD_FSYNC, on any file system
// since Linux 4.18) and says when each is done on an eventfd the loop watches: no
// thread in this process (it must never run one: ARCHITECTURE.md). So the data
// syncs of several sessions overlap, and the folder fsyncs are shared (group
// commit): a folder fsync covers every rename made before it began; renames made
// while it runs wait for the next one, a single fsync for all of them.
//
// Without kernel AIO (io_setup refused: fs.aio-max-nr reached, a seccomp filter) or
// when the kernel refuses a request, the sync runs in place, blocking, as it would
// without this class; the outcome is the same.
// Invariants: a sync is reported done only once the kernel completed it, with its
// error; a folder fsync that began before a rename never counts for that rename.
// The loop can end while nothing is pending (the eventfd is watched only then).
// Must never: run a thread, or resume a waiter twice.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/kernel_aio.hpp"
#include "core/result.hpp"

namespace mailroom::net {

class DiskSync {
public:
    enum class Mode { kernel_aio, in_place };
    // in_place: never use kernel AIO (tests; the fallback when the kernel has none).
    explicit DiskSync(boost::asio::any_io_executor executor, Mode mode = Mode::kernel_aio);
    // Waits for the kernel's syncs still running (io_destroy): their descriptors may close.
    ~DiskSync();
    DiskSync(const DiskSync&) = delete;
    DiskSync& operator=(const DiskSync&) = delete;

    Mode mode() const { return aio_ && aio_->usable() ? Mode::kernel_aio : Mode::in_place; }

    // fdatasync(fd); `what` names the file in an error ("fsync what").
    boost::asio::awaitable<core::Result<void>> sync_data(int fd, std::string what);
    // fsync(folder) for a rename made into it before the call; shared with every
    // other caller whose rename the same fsync covers.
    boost::asio::awaitable<core::Result<void>> sync_folder(int folder, std::string what);

    // Syncs submitted to the kernel (or run in place) since the start: the folder
    // fsyncs among them show how many were shared.
    uint64_t data_syncs() const { return data_syncs_; }
    uint64_t folder_syncs() const { return folder_syncs_; }

private:
    // One caller waiting for its sync: woken through its timer, once.
    struct Waiter {
        explicit Waiter(const boost::asio::any_io_executor& executor)
            : timer(executor, boost::asio::steady_timer::time_point::max()) {}
        void finish(int error_number);
        boost::asio::steady_timer timer;
        bool done = false;
        int error = 0;
    };
    // The renames into one folder waiting for an fsync that began after them.
    struct FolderGroup {
        uint64_t announced = 0;  // renames announced so far; a caller's ticket is its number
        bool running = false;    // an fsync of the folder is in the kernel's hands
        std::vector<std::pair<uint64_t, std::shared_ptr<Waiter>>> waiting;
    };
    using Done = std::function<void(int error)>;

    static boost::asio::awaitable<int> wait(std::shared_ptr<Waiter> waiter);

    void start(int fd, bool data_only, Done done);
    void watch_completions();
    void take_completions(bool block);
    void start_folder_sync(int folder);

    boost::asio::any_io_executor executor_;
    std::optional<core::KernelAio> aio_;  // none: syncs run in place
    boost::asio::posix::stream_descriptor completions_;  // the eventfd the kernel signals
    bool watching_ = false;
    uint64_t next_request_ = 1;
    std::map<uint64_t, Done> in_flight_;  // by the request number given to the kernel
    std::map<int, FolderGroup> folders_;
    uint64_t data_syncs_ = 0, folder_syncs_ = 0;
    std::shared_ptr<bool> alive_;  // false once destroyed: handlers posted before then do nothing
};

}  // namespace mailroom::net
