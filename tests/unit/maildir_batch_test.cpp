// delivery/maildir_batch.hpp and MaildirDelivery's steps (delivery/maildir_writer.hpp):
// Maildir deliveries made durable together, each with deliver()'s order and outcome;
// and core::sync_all (core/kernel_aio.hpp), the syncs they share.
#include "delivery/maildir_batch.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/kernel_aio.hpp"
#include "core/unique_fd.hpp"
#include "mbox_test_support.hpp"
#include "support/test_support.hpp"

using namespace mailroom;
using mailroom::mail::MaildirBatch;
using mailroom::mail::MaildirDelivery;
using mailroom::test::names_in;
using mailroom::test::TempDir;

TEST_CASE("a batch delivers every staged message, one new/ fsync per Maildir", "[maildir_batch]") {
    TempDir dir;
    const std::string one = dir.path + "/one", other = dir.path + "/other";
    MaildirBatch batch;
    for (uint64_t tag = 0; tag < 5; ++tag) {
        CHECK_FALSE(batch.add(tag, mbox_test::message("Subject: one " + std::to_string(tag) + "\n\nbody\n"),
                              mbox_test::info_for(one)));
    }
    for (uint64_t tag = 5; tag < 7; ++tag) {
        CHECK_FALSE(batch.add(tag, mbox_test::message("Subject: other\n\nbody\n"), mbox_test::info_for(other)));
    }
    // Staged, not yet visible to a reader of new/.
    CHECK(names_in(one + "/new").empty());
    CHECK(names_in(one + "/tmp").size() == 5);
    auto outcomes = batch.finish();
    REQUIRE(outcomes.size() == 7);
    std::vector<bool> seen(7, false);
    for (const auto& outcome : outcomes) {
        CHECK(outcome.status.is_ok());
        REQUIRE(outcome.tag < 7);
        seen[outcome.tag] = true;
    }
    CHECK(std::count(seen.begin(), seen.end(), true) == 7);
    CHECK(batch.folder_syncs() == 2);
    CHECK(names_in(one + "/new").size() == 5);
    CHECK(names_in(other + "/new").size() == 2);
    CHECK(names_in(one + "/tmp").empty());
    CHECK(names_in(other + "/tmp").empty());
    CHECK(batch.empty());
    for (const auto& name : names_in(other + "/new")) {
        CHECK(mailroom::test::slurp(other + "/new/" + name).find("Subject: other\n\nbody\n") != std::string::npos);
    }
}

TEST_CASE("a delivery refused at staging is answered at once and the rest of the batch delivered",
          "[maildir_batch]") {
    TempDir dir;
    REQUIRE(::symlink("/tmp", (dir.path + "/linked").c_str()) == 0);
    MaildirBatch batch;
    CHECK_FALSE(batch.add(1, mbox_test::message("Subject: a\n\nx\n"), mbox_test::info_for(dir.path + "/good")));
    auto refused = batch.add(2, mbox_test::message("Subject: b\n\nx\n"), mbox_test::info_for(dir.path + "/linked"));
    REQUIRE(refused);
    CHECK(refused->code() == "4.2.0");
    auto outcomes = batch.finish();
    REQUIRE(outcomes.size() == 1);
    CHECK(outcomes[0].tag == 1);
    CHECK(outcomes[0].status.is_ok());
    CHECK(names_in(dir.path + "/good/new").size() == 1);
}

TEST_CASE("a failed file sync links nothing into new/ and leaves nothing in tmp/", "[maildir_batch]") {
    TempDir dir;
    const std::string maildir = dir.path + "/Maildir";
    {
        MaildirDelivery delivery;
        REQUIRE(delivery.stage(mbox_test::message("Subject: a\n\nx\n"), mbox_test::info_for(maildir)).is_ok());
        CHECK(names_in(maildir + "/tmp").size() == 1);
        auto published = delivery.publish(core::unexpected_errno("fsync " + delivery.tmp_shown(), EIO));
        CHECK_FALSE(published.is_ok());
        CHECK(published.is_temporary());
        CHECK(names_in(maildir + "/new").empty());
    }
    CHECK(names_in(maildir + "/tmp").empty());
}

TEST_CASE("a failed new/ sync takes the message back out of new/ (the retry must not duplicate)",
          "[maildir_batch]") {
    TempDir dir;
    const std::string maildir = dir.path + "/Maildir";
    {
        MaildirDelivery delivery;
        REQUIRE(delivery.stage(mbox_test::message("Subject: a\n\nx\n"), mbox_test::info_for(maildir)).is_ok());
        REQUIRE(delivery.publish({}).is_ok());
        CHECK(names_in(maildir + "/new").size() == 1);
        auto settled = delivery.settle(core::unexpected_errno("fsync " + delivery.new_folder_shown(), EIO));
        CHECK_FALSE(settled.is_ok());
        CHECK(names_in(maildir + "/new").empty());
    }
    CHECK(names_in(maildir + "/tmp").empty());
}

TEST_CASE("sync_all syncs files and folders at once and reports each failure on its own", "[maildir_batch]") {
    TempDir dir;
    std::vector<core::UniqueFd> files;
    for (int i = 0; i < 5; ++i) {
        files.emplace_back(::open(dir.write("f" + std::to_string(i), "x").c_str(), O_WRONLY | O_CLOEXEC));
        REQUIRE(files.back().get() >= 0);
    }
    core::UniqueFd folder(::open(dir.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    int ends[2];
    REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
    core::UniqueFd reader(ends[0]), writer(ends[1]);
    std::vector<core::SyncOrder> orders;
    for (auto& file : files) orders.push_back({file.get(), true});
    orders.push_back({writer.get(), true});    // a pipe has no fsync: EINVAL
    orders.push_back({folder.get(), false});  // a folder: fsync
    orders.push_back({-1, true});              // EBADF
    core::sync_all(orders);
    for (int i = 0; i < 5; ++i) CHECK(orders[static_cast<size_t>(i)].error == 0);
    CHECK(orders[5].error == EINVAL);
    CHECK(orders[6].error == 0);
    CHECK(orders[7].error == EBADF);
    // Alone: done in place, the same answers.
    std::vector<core::SyncOrder> alone{{writer.get(), true}};
    core::sync_all(alone);
    CHECK(alone[0].error == EINVAL);
}

TEST_CASE("a forked copy does not take its parent's AIO context for its own, and sync_all works there", "[maildir_batch]") {
    TempDir dir;
    core::UniqueFd one(::open(dir.write("a", "x").c_str(), O_WRONLY | O_CLOEXEC));
    core::UniqueFd two(::open(dir.write("b", "y").c_str(), O_WRONLY | O_CLOEXEC));
    std::vector<core::SyncOrder> orders{{one.get(), true}, {two.get(), true}};
    core::sync_all(orders);  // the parent's context, made now
    REQUIRE(orders[0].error == 0);
    core::KernelAio parents(4);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // The kernel does not copy a context into a fork: the child must not touch it.
        bool ok = !parents.usable();
        std::vector<core::SyncOrder> again{{one.get(), true}, {two.get(), true}};
        core::sync_all(again);
        ok = ok && again[0].error == 0 && again[1].error == 0;
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
