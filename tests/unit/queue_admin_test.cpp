// Queue administration (mailctl hold/release/delete/requeue) and mailq's walk of
// the spool: SPEC section 1, docs/mailq.md.
#include "queue/queue_admin.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "queue/queue_listing.hpp"
#include "support/test_support.hpp"

using namespace mailroom;
using namespace mailroom::mail;
using mailroom::test::TempDir;

namespace {

struct AdminHarness {
    TempDir tmp;
    std::vector<std::string> lines;
    core::Logger log = core::Logger::capture("postsuper", &lines);
    Spool spool = std::move(*Spool::open(tmp.path + "/spool"));

    std::string submit(std::vector<std::string> recipients = {"x@far.example"}, QueueFolder folder = QueueFolder::queue) {
        auto writer = QueueWriter::begin(spool);
        REQUIRE(writer);
        REQUIRE(writer->write("Subject: test\n\nhello\n"));
        Envelope envelope{"alice@host.example", std::move(recipients), 1000, 1'795'292'614'000'000ull};
        REQUIRE(writer->commit(envelope, folder));
        return writer->id();
    }
    bool in(QueueFolder folder, const std::string& id) const {
        return ::access(spool.entry_path(folder, id).c_str(), F_OK) == 0;
    }
    AdminResult run(AdminAction action, const std::string& id, std::time_t now = 1'795'300'000) {
        return administer(spool, action, id, now, log);
    }
};

void defer_first(AdminHarness& h, const std::string& id, std::time_t next_try) {
    auto attempt = LockedEntry::lock(h.spool, QueueFolder::queue, id);
    REQUIRE(attempt);
    REQUIRE(attempt->entry);
    StateRecord record{StateRecord::Kind::deferred, {0}, 1'795'292'700, next_try, "4.3.5", "remote delivery not configured", ""};
    REQUIRE(attempt->entry->append({record}));
    REQUIRE(attempt->entry->set_due(next_try));
}

}  // namespace

TEST_CASE("mailctl hold moves an entry to hold/ and logs placed on hold, release brings it back", "[admin]") {
    AdminHarness h;
    auto id = h.submit();
    CHECK(h.run(AdminAction::hold, id).outcome == AdminResult::Outcome::done);
    CHECK(h.in(QueueFolder::hold, id));
    CHECK_FALSE(h.in(QueueFolder::queue, id));
    auto again = h.run(AdminAction::hold, id);
    CHECK(again.outcome == AdminResult::Outcome::unchanged);
    CHECK(again.why == "already on hold");
    CHECK(h.run(AdminAction::release, id).outcome == AdminResult::Outcome::done);
    CHECK(h.in(QueueFolder::queue, id));
    CHECK(h.run(AdminAction::release, id).outcome == AdminResult::Outcome::unchanged);
    CHECK(h.lines == std::vector<std::string>{id + ": placed on hold", id + ": released from hold"});
}

TEST_CASE("mailctl delete removes an entry from queue/, hold/ or quarantine/, corrupt or not", "[admin]") {
    AdminHarness h;
    auto queued = h.submit();
    auto held = h.submit({"x@far.example"}, QueueFolder::hold);
    auto corrupt = h.submit();
    mailroom::test::spit(h.spool.entry_path(QueueFolder::queue, corrupt), "garbage\n");
    auto quarantined = h.submit();
    REQUIRE(h.spool.quarantine(quarantined, QueueFolder::queue));
    for (const auto& id : {queued, held, corrupt, quarantined}) {
        CHECK(h.run(AdminAction::remove, id).outcome == AdminResult::Outcome::done);
    }
    CHECK(mailroom::test::names_in(h.spool.folder_path(QueueFolder::queue)).empty());
    CHECK(mailroom::test::names_in(h.spool.folder_path(QueueFolder::hold)).empty());
    CHECK(mailroom::test::names_in(h.spool.folder_path(QueueFolder::quarantine)).empty());
    CHECK(h.lines.size() == 4);
    CHECK(h.lines[0] == queued + ": removed");
}

TEST_CASE("An ID in no queue folder is not found, and changes nothing", "[admin]") {
    AdminHarness h;
    h.submit();
    for (auto action : {AdminAction::hold, AdminAction::release, AdminAction::remove, AdminAction::requeue}) {
        CHECK(h.run(action, "0000000000AAAAA").outcome == AdminResult::Outcome::not_found);
    }
    CHECK(h.run(AdminAction::remove, "../queue").outcome == AdminResult::Outcome::not_found);
    CHECK(h.lines.empty());
}

TEST_CASE("mailctl requeue makes every deferred recipient and the entry due now", "[admin]") {
    AdminHarness h;
    auto id = h.submit();
    defer_first(h, id, 1'795'400'000);
    CHECK(h.run(AdminAction::requeue, id, 1'795'300'000).outcome == AdminResult::Outcome::done);
    auto entry = read_entry(h.spool, QueueFolder::queue, id);
    REQUIRE(entry);
    CHECK(entry->state.requeued == 1'795'300'000);
    CHECK(entry->state.recipients[0].next_try == 1'795'300'000);
    struct stat st {};
    REQUIRE(::stat(h.spool.entry_path(QueueFolder::queue, id).c_str(), &st) == 0);
    CHECK(st.st_mtime == 1'795'300'000);
    CHECK(h.lines == std::vector<std::string>{id + ": requeued"});
}

TEST_CASE("mailctl requeue of a held ID releases it, as postsuper -r does", "[admin]") {
    AdminHarness h;
    auto id = h.submit({"x@far.example"}, QueueFolder::hold);
    CHECK(h.run(AdminAction::requeue, id).outcome == AdminResult::Outcome::done);
    CHECK(h.in(QueueFolder::queue, id));
}

TEST_CASE("mailctl hold waits for the runner that holds the entry's lock", "[admin]") {
    AdminHarness h;
    auto id = h.submit();
    pid_t runner = mailroom::test::hold_lock_in_child(h.spool.entry_path(QueueFolder::queue, id),
                                                      std::chrono::milliseconds(300));
    auto start = std::chrono::steady_clock::now();
    CHECK(h.run(AdminAction::hold, id).outcome == AdminResult::Outcome::done);
    CHECK(mailroom::test::seconds_since(start) >= 0.2);
    ::waitpid(runner, nullptr, 0);
    CHECK(h.in(QueueFolder::hold, id));
}

TEST_CASE("ALL means queue/ for hold and requeue, hold/ for release, both for delete", "[admin]") {
    CHECK(folders_for_all(AdminAction::hold) == std::vector<QueueFolder>{QueueFolder::queue});
    CHECK(folders_for_all(AdminAction::release) == std::vector<QueueFolder>{QueueFolder::hold});
    CHECK(folders_for_all(AdminAction::remove) == std::vector<QueueFolder>{QueueFolder::queue, QueueFolder::hold});
    CHECK(folders_for_all(AdminAction::requeue) == std::vector<QueueFolder>{QueueFolder::queue});
}

TEST_CASE("mailq walks queue/ and hold/ in queue ID order, marks a locked entry, lists a corrupt one", "[listing]") {
    AdminHarness h;
    auto first = h.submit();
    auto second = h.submit({"y@far.example"}, QueueFolder::hold);
    auto third = h.submit({"z@far.example"});
    mailroom::test::spit(h.spool.entry_path(QueueFolder::queue, third), std::string(80, 'x') + "\n");
    auto fourth = h.submit({"w@far.example"});
    pid_t runner = mailroom::test::hold_lock_in_child(h.spool.entry_path(QueueFolder::queue, fourth),
                                                      std::chrono::milliseconds(2000));
    std::string out;
    auto listed = list_queue(h.spool, ListingFormat::text, [&](std::string_view chunk) {
        out += chunk;
        return true;
    });
    ::kill(runner, SIGKILL);
    ::waitpid(runner, nullptr, 0);
    REQUIRE(listed);
    CHECK(*listed == 4);
    auto lines = mailroom::test::lines_of(out);
    REQUIRE(lines.size() == 13);
    CHECK(lines[1].rfind(first + " ", 0) == 0);
    CHECK(lines[4].rfind(second + "! ", 0) == 0);
    CHECK(lines[7].rfind(third + " ", 0) == 0);
    CHECK(lines[7].find("(unreadable: not a mailroom queue entry)") != std::string::npos);
    CHECK(lines[9].rfind(fourth + "* ", 0) == 0);
    CHECK(lines[12] == "-- 1 Kbytes in 4 Requests.");
}
