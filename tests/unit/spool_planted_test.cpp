// Names in queue/ that look like queue IDs but are not files (docs/spool.md,
// "Not an entry"): reading or locking one reports it corrupt without opening it
// (a FIFO would block, a link would lead out of the spool), and quarantine moves
// the name itself, never over an earlier one.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "queue/spool.hpp"
#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::test::slurp;
using mailroom::test::TempDir;

namespace {

std::string submit(const Spool& spool) {
    auto writer = QueueWriter::begin(spool);
    REQUIRE(writer);
    REQUIRE(writer->write("x\n"));
    Envelope envelope;
    envelope.sender = "alice@host.example";
    envelope.recipients = {"bob@x"};
    envelope.arrival_micros = 1'763'756'614'000'000ull;
    REQUIRE(writer->commit(envelope));
    return writer->id();
}

}  // namespace

TEST_CASE("A folder, link or FIFO under a queue ID is corrupt for read and lock, and never opened", "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    // A valid entry elsewhere: following the link would find a readable entry.
    std::string real = submit(*spool);
    std::string elsewhere = tmp.path + "/elsewhere";
    REQUIRE(::rename(spool->entry_path(QueueFolder::queue, real).c_str(), elsewhere.c_str()) == 0);
    std::string dir_id = "000000000Dir001", link_id = "000000000Lnk001", fifo_id = "000000000Fif001";
    REQUIRE(::mkdir(spool->entry_path(QueueFolder::queue, dir_id).c_str(), 0700) == 0);
    REQUIRE(::symlink(elsewhere.c_str(), spool->entry_path(QueueFolder::queue, link_id).c_str()) == 0);
    REQUIRE(::mkfifo(spool->entry_path(QueueFolder::queue, fifo_id).c_str(), 0600) == 0);
    for (const auto& [id, kind] : {std::pair{dir_id, "a folder"}, {link_id, "a symbolic link"}, {fifo_id, "a FIFO"}}) {
        INFO(id);
        // Neither call may block on the FIFO (no writer): the test would hang.
        auto snapshot = read_entry(*spool, QueueFolder::queue, id);
        REQUIRE_FALSE(snapshot);
        CHECK(snapshot.error().errno_value() == EBADMSG);
        CHECK(snapshot.error().context == spool->entry_path(QueueFolder::queue, id) + ": " + kind + ", not a queue entry");
        auto attempt = LockedEntry::lock(*spool, QueueFolder::queue, id, true);
        REQUIRE_FALSE(attempt);
        CHECK(attempt.error().errno_value() == EBADMSG);
    }
}

TEST_CASE("quarantine moves a symbolic link as the link and never replaces what is there", "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    std::string target = tmp.path + "/target";
    mailroom::test::spit(target, "not to be touched\n");
    std::string id = "000000000Lnk001";
    for (int round = 1; round <= 3; ++round) {
        INFO(round);
        REQUIRE(::symlink(target.c_str(), spool->entry_path(QueueFolder::queue, id).c_str()) == 0);
        auto moved = spool->quarantine(id, QueueFolder::queue);
        REQUIRE(moved);
        std::string expected = round == 1 ? id : id + "." + std::to_string(round);
        CHECK(*moved == expected);
        struct stat st {};
        REQUIRE(::lstat((spool->folder_path(QueueFolder::quarantine) + "/" + expected).c_str(), &st) == 0);
        CHECK(S_ISLNK(st.st_mode));
        CHECK(::access(spool->entry_path(QueueFolder::queue, id).c_str(), F_OK) != 0);
    }
    CHECK(slurp(target) == "not to be touched\n");
}
