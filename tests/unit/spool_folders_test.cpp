// Spool::open refuses folders it did not make itself or that someone else arranged:
// a symbolic link, a file, a folder of another owner (docs/spool.md, "Folders").
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "queue/spool.hpp"
#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::test::TempDir;

namespace {

std::string make_entry(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "x", 1) == 1);
    ::close(fd);
    // Two days old: what the tmp/ sweep removes.
    struct timespec old[2] = {{::time(nullptr) - 2 * 86400, 0}, {::time(nullptr) - 2 * 86400, 0}};
    REQUIRE(::utimensat(AT_FDCWD, path.c_str(), old, 0) == 0);
    return path;
}

}  // namespace

TEST_CASE("a spool whose tmp/ is a symbolic link is refused, and nothing behind the link is touched", "[spool]") {
    TempDir tmp;
    auto other = Spool::open(tmp.path + "/other");
    REQUIRE(other);
    std::string held = make_entry(tmp.path + "/other/hold/A1B2C3D4E5F6G7H");

    std::string mine = tmp.path + "/mine";
    REQUIRE(::mkdir(mine.c_str(), 0755) == 0);
    REQUIRE(::symlink((tmp.path + "/other/hold").c_str(), (mine + "/tmp").c_str()) == 0);
    auto spool = Spool::open(mine);
    REQUIRE_FALSE(spool);
    CHECK(spool.error().errno_value() == EPERM);
    CHECK_THAT(spool.error().message(), Catch::Contains(mine + "/tmp is a symbolic link"));
    CHECK(::access(held.c_str(), F_OK) == 0);
}

TEST_CASE("a spool folder that is a symbolic link to a folder is refused, whichever folder", "[spool]") {
    for (const char* name : {"tmp", "queue", "hold", "quarantine"}) {
        TempDir tmp;
        REQUIRE(::mkdir((tmp.path + "/elsewhere").c_str(), 0700) == 0);
        std::string dir = tmp.path + "/spool";
        REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
        REQUIRE(::symlink((tmp.path + "/elsewhere").c_str(), (dir + "/" + name).c_str()) == 0);
        INFO(name);
        auto spool = Spool::open(dir);
        REQUIRE_FALSE(spool);
        CHECK(spool.error().errno_value() == EPERM);
    }
}

TEST_CASE("a spool folder that is a file is refused", "[spool]") {
    TempDir tmp;
    std::string dir = tmp.path + "/spool";
    REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
    int fd = ::open((dir + "/queue").c_str(), O_WRONLY | O_CREAT, 0600);
    REQUIRE(fd >= 0);
    ::close(fd);
    auto spool = Spool::open(dir);
    REQUIRE_FALSE(spool);
    CHECK(spool.error().errno_value() == EPERM);
    CHECK_THAT(spool.error().message(), Catch::Contains("/queue is not a folder"));
}

TEST_CASE("a spool folder that does not belong to the owner of spool_dir is refused", "[spool]") {
    if (::geteuid() != 0) {
        WARN("skipped: needs root to give a folder to another uid");
        return;
    }
    TempDir tmp;
    std::string dir = tmp.path + "/spool";
    REQUIRE(Spool::open(dir));
    REQUIRE(::chown((dir + "/hold").c_str(), 20001, 20001) == 0);
    auto spool = Spool::open(dir);
    REQUIRE_FALSE(spool);
    CHECK(spool.error().errno_value() == EPERM);
    CHECK_THAT(spool.error().message(), Catch::Contains("/hold belongs to uid 20001, not to the spool owner (uid 0"));
}

TEST_CASE("submissions and the sweep keep to the tmp/ that was opened, even when its name is swapped", "[spool]") {
    TempDir tmp;
    auto other = Spool::open(tmp.path + "/other");
    REQUIRE(other);
    std::string held = make_entry(tmp.path + "/other/hold/A1B2C3D4E5F6G7H");
    std::string dir = tmp.path + "/spool";
    auto spool = Spool::open(dir);
    REQUIRE(spool);
    make_entry(dir + "/tmp/B1B2C3D4E5F6G7H");
    // The name tmp/ now leads elsewhere; the spool still works in the folder it opened.
    REQUIRE(::rename((dir + "/tmp").c_str(), (dir + "/old-tmp").c_str()) == 0);
    REQUIRE(::symlink((tmp.path + "/other/hold").c_str(), (dir + "/tmp").c_str()) == 0);
    spool->sweep_tmp(::time(nullptr), 86400);
    CHECK(::access(held.c_str(), F_OK) == 0);
    CHECK(::access((dir + "/old-tmp/B1B2C3D4E5F6G7H").c_str(), F_OK) != 0);  // swept where it was
    auto writer = QueueWriter::begin(*spool);
    REQUIRE(writer);
    CHECK(::access((dir + "/old-tmp/" + writer->id()).c_str(), F_OK) == 0);
    CHECK(::access((tmp.path + "/other/hold/" + writer->id()).c_str(), F_OK) != 0);
}

TEST_CASE("locks, reads, moves and removals keep to the folders that were opened, even when a name is swapped",
          "[spool]") {
    TempDir tmp;
    auto other = Spool::open(tmp.path + "/other");
    REQUIRE(other);
    std::string dir = tmp.path + "/spool";
    auto spool = Spool::open(dir);
    REQUIRE(spool);
    Envelope envelope;
    envelope.sender = "alice@host.example";
    envelope.recipients = {"bob@x"};
    auto writer = QueueWriter::begin(*spool);
    REQUIRE(writer);
    REQUIRE(writer->write("Subject: mine\n\nbody\n"));
    REQUIRE(writer->commit(envelope));
    std::string mine = writer->id();
    // An entry of the other spool with the same name, reached through swapped names.
    REQUIRE(::link((dir + "/queue/" + mine).c_str(), (tmp.path + "/other/hold/" + mine).c_str()) == 0);
    for (const char* name : {"queue", "hold"}) {
        REQUIRE(::rename((dir + "/" + name).c_str(), (dir + "/old-" + name).c_str()) == 0);
        REQUIRE(::symlink((tmp.path + "/other/" + name).c_str(), (dir + "/" + name).c_str()) == 0);
    }
    REQUIRE(read_entry(*spool, QueueFolder::queue, mine));
    auto attempt = LockedEntry::lock(*spool, QueueFolder::queue, mine);
    REQUIRE(attempt);
    REQUIRE(attempt->outcome == LockAttempt::Outcome::locked);
    REQUIRE(attempt->entry->move_to(QueueFolder::hold));
    CHECK(::access((dir + "/old-hold/" + mine).c_str(), F_OK) == 0);
    REQUIRE(attempt->entry->remove());
    CHECK(::access((dir + "/old-hold/" + mine).c_str(), F_OK) != 0);
    // The other spool's file of that name is untouched.
    CHECK(::access((tmp.path + "/other/hold/" + mine).c_str(), F_OK) == 0);
}
