// lib/net/disk_sync.hpp: syncs awaited on the loop, through the kernel's AIO and in
// place, and the folder fsyncs shared by the renames they cover (group commit).
#include "net/disk_sync.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "core/unique_fd.hpp"
#include "support/test_support.hpp"

// g++ 12 warns of a mismatched new/delete inside Asio's coroutine frames, wrongly.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

using namespace mailroom;
using mailroom::net::DiskSync;
using mailroom::test::TempDir;
namespace asio = boost::asio;

namespace {

core::UniqueFd open_folder(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    return core::UniqueFd(fd);
}

// What one caller of sync_folder saw.
struct Seen {
    bool woken = false;
    bool ok = false;
};

asio::awaitable<void> sync_folder_into(DiskSync& disk, int folder, Seen& seen) {
    auto synced = co_await disk.sync_folder(folder, "the folder");
    seen.woken = true;
    seen.ok = synced.has_value();
}

void run(asio::io_context& io) {
    // Bounded: a waiter never woken would otherwise hang the test, not fail it.
    io.run_for(std::chrono::seconds(20));
    REQUIRE(io.stopped());
}

}  // namespace

TEST_CASE("a data sync and a folder sync report done once the kernel did them", "[disk_sync]") {
    auto mode = GENERATE(DiskSync::Mode::kernel_aio, DiskSync::Mode::in_place);
    TempDir dir;
    std::string file = dir.write("entry", "some bytes to sync");
    core::UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
    REQUIRE(fd.get() >= 0);
    auto folder = open_folder(dir.path);

    asio::io_context io;
    DiskSync disk(io.get_executor(), mode);
    bool data_ok = false, folder_ok = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            data_ok = (co_await disk.sync_data(fd.get(), file)).has_value();
            folder_ok = (co_await disk.sync_folder(folder.get(), dir.path)).has_value();
        },
        asio::detached);
    run(io);
    CHECK(data_ok);
    CHECK(folder_ok);
    CHECK(disk.data_syncs() == 1);
    CHECK(disk.folder_syncs() == 1);
}

TEST_CASE("the loop has the kernel's AIO where the kernel offers it", "[disk_sync]") {
    asio::io_context io;
    DiskSync disk(io.get_executor());
    if (disk.mode() != DiskSync::Mode::kernel_aio) {
        WARN("no kernel AIO here (io_setup refused): every sync runs in place");
        return;
    }
    CHECK(DiskSync(io.get_executor(), DiskSync::Mode::in_place).mode() == DiskSync::Mode::in_place);
}

TEST_CASE("a sync that fails says so, with errno and the file's name", "[disk_sync]") {
    auto mode = GENERATE(DiskSync::Mode::kernel_aio, DiskSync::Mode::in_place);
    // A pipe has no fsync (EINVAL), a closed descriptor is EBADF: in AIO the kernel
    // refuses them at submission and they run in place, with the same answer.
    int ends[2];
    REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
    core::UniqueFd reader(ends[0]), writer(ends[1]);
    asio::io_context io;
    DiskSync disk(io.get_executor(), mode);
    std::optional<core::Result<void>> pipe_data, pipe_folder, closed;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            pipe_data = co_await disk.sync_data(writer.get(), "the pipe");
            pipe_folder = co_await disk.sync_folder(writer.get(), "the pipe folder");
            closed = co_await disk.sync_data(-1, "nothing");
        },
        asio::detached);
    run(io);
    REQUIRE(pipe_data.has_value());
    REQUIRE(!pipe_data->has_value());
    CHECK(pipe_data->error().errno_value() == EINVAL);
    CHECK(pipe_data->error().message().find("fsync the pipe") != std::string::npos);
    REQUIRE(pipe_folder.has_value());
    REQUIRE(!pipe_folder->has_value());
    CHECK(pipe_folder->error().message().find("fsync folder the pipe folder") != std::string::npos);
    REQUIRE(closed.has_value());
    REQUIRE(!closed->has_value());
    CHECK(closed->error().errno_value() == EBADF);
}

TEST_CASE("renames announced together share one folder fsync", "[disk_sync]") {
    auto mode = GENERATE(DiskSync::Mode::kernel_aio, DiskSync::Mode::in_place);
    TempDir dir;
    auto folder = open_folder(dir.path);
    asio::io_context io;
    DiskSync disk(io.get_executor(), mode);
    std::vector<Seen> seen(8);
    // The first starts an fsync at once; the seven announced while it runs share the next.
    for (auto& one : seen) asio::co_spawn(io, sync_folder_into(disk, folder.get(), one), asio::detached);
    run(io);
    for (const auto& one : seen) {
        CHECK(one.woken);
        CHECK(one.ok);
    }
    CHECK(disk.folder_syncs() == 2);
}

TEST_CASE("a folder fsync that began before a rename does not count for it", "[disk_sync]") {
    auto mode = GENERATE(DiskSync::Mode::kernel_aio, DiskSync::Mode::in_place);
    TempDir dir;
    auto folder = open_folder(dir.path);
    asio::io_context io;
    DiskSync disk(io.get_executor(), mode);
    Seen first, second;
    asio::co_spawn(io, sync_folder_into(disk, folder.get(), first), asio::detached);
    // Announced once the first one's fsync has started: woken only by a later one.
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            REQUIRE(disk.folder_syncs() == 1);
            co_await sync_folder_into(disk, folder.get(), second);
        },
        asio::detached);
    run(io);
    CHECK(first.ok);
    CHECK(second.ok);
    // The first fsync's end woke only the first; the second needed one of its own.
    CHECK(disk.folder_syncs() == 2);
}

TEST_CASE("folders are grouped each on its own", "[disk_sync]") {
    TempDir one_dir, other_dir;
    auto one = open_folder(one_dir.path), other = open_folder(other_dir.path);
    asio::io_context io;
    DiskSync disk(io.get_executor());
    Seen a, b;
    uint64_t started_at_once = 0;
    asio::co_spawn(io, sync_folder_into(disk, one.get(), a), asio::detached);
    asio::co_spawn(io, sync_folder_into(disk, other.get(), b), asio::detached);
    // Runs once both have announced their renames, before either fsync is reported.
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { started_at_once = disk.folder_syncs(); co_return; }, asio::detached);
    run(io);
    CHECK(a.ok);
    CHECK(b.ok);
    // Neither waits for the other's: both fsyncs started at once.
    CHECK(started_at_once == 2);
    CHECK(disk.folder_syncs() == 2);
}

TEST_CASE("many data syncs in flight at once all come back", "[disk_sync]") {
    TempDir dir;
    constexpr int count = 300;  // past the kernel context's depth: the rest run in place
    std::vector<core::UniqueFd> files;
    for (int i = 0; i < count; ++i) {
        std::string path = dir.write("f" + std::to_string(i), "x");
        files.emplace_back(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
        REQUIRE(files.back().get() >= 0);
    }
    asio::io_context io;
    DiskSync disk(io.get_executor());
    int done = 0;
    for (auto& file : files) {
        asio::co_spawn(
            io,
            [&disk, &done, fd = file.get()]() -> asio::awaitable<void> {
                if ((co_await disk.sync_data(fd, "a file")).has_value()) ++done;
            },
            asio::detached);
    }
    run(io);
    CHECK(done == count);
    CHECK(disk.data_syncs() == static_cast<uint64_t>(count));
}
