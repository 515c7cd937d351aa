// Spool: atomic submission, per-message locks, state appends, scans (docs/spool.md).
#include "queue/spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::test::slurp;
using mailroom::test::TempDir;

namespace {

Envelope envelope_for(std::vector<std::string> recipients) {
    Envelope envelope;
    envelope.sender = "alice@host.example";
    envelope.recipients = std::move(recipients);
    envelope.submitter_uid = 1000;
    envelope.arrival_micros = 1'763'756'614'000'000ull;
    return envelope;
}

std::string submit(const Spool& spool, std::string_view content, std::vector<std::string> recipients = {"bob@x"}) {
    auto writer = QueueWriter::begin(spool);
    REQUIRE(writer);
    REQUIRE(writer->write(content));
    REQUIRE(writer->commit(envelope_for(std::move(recipients))));
    return writer->id();
}

std::string read_message(const Message& message) {
    std::string out;
    auto reader = message.reader();
    char buf[1000];
    for (;;) {
        auto n = reader.read(buf, sizeof buf);
        REQUIRE(n);
        if (*n == 0) return out;
        out.append(buf, *n);
    }
}

std::vector<std::string> ids_in(const Spool& spool, QueueFolder folder) {
    std::vector<std::string> ids;
    REQUIRE(spool.for_each_entry(folder, [&](const std::string& id) {
        ids.push_back(id);
        return true;
    }));
    return ids;
}

}  // namespace

TEST_CASE("A queued message appears whole in queue/, with its folders made 0700", "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path + "/spool");
    REQUIRE(spool);
    for (const char* name : {"tmp", "queue", "hold", "quarantine"}) {
        struct stat st {};
        REQUIRE(::stat((tmp.path + "/spool/" + name).c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0700);
    }
    struct stat fifo {};
    REQUIRE(::stat(spool->trigger_path().c_str(), &fifo) == 0);
    CHECK(S_ISFIFO(fifo.st_mode));

    auto id = submit(*spool, "Subject: hi\n\nbody\n", {"bob@x", "carol@x"});
    CHECK(mailroom::test::names_in(tmp.path + "/spool/tmp").empty());
    std::string file = slurp(spool->entry_path(QueueFolder::queue, id));
    CHECK(file ==
          "mailroom-queue 2 message 00000000000000000018\nSubject: hi\n\nbody\n"
          "arrival 1763756614.000000\nuid 1000\nsender <alice@host.example>\nrecipient <bob@x>\nrecipient <carol@x>\nend\n");
    struct stat st {};
    REQUIRE(::stat(spool->entry_path(QueueFolder::queue, id).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(ids_in(*spool, QueueFolder::queue) == std::vector<std::string>{id});
}

TEST_CASE("A submission abandoned before commit leaves nothing behind", "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    {
        auto writer = QueueWriter::begin(*spool);
        REQUIRE(writer);
        REQUIRE(writer->write("half a message"));
        CHECK(mailroom::test::names_in(tmp.path + "/tmp").size() == 1);
    }
    CHECK(mailroom::test::names_in(tmp.path + "/tmp").empty());
    CHECK(ids_in(*spool, QueueFolder::queue).empty());
}

TEST_CASE("A large message is streamed to the entry and read back from it unchanged", "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    std::string content = "Delivered-To: bob@x\nSubject: big\n\n";
    while (content.size() < 300'000) content += "line of the body " + std::to_string(content.size()) + "\n";
    auto writer = QueueWriter::begin(*spool);
    REQUIRE(writer);
    for (size_t at = 0; at < content.size(); at += 7000) REQUIRE(writer->write(std::string_view(content).substr(at, 7000)));
    REQUIRE(writer->commit(envelope_for({"bob@x"})));
    auto attempt = LockedEntry::lock(*spool, QueueFolder::queue, writer->id());
    REQUIRE(attempt);
    REQUIRE(attempt->entry);
    CHECK(attempt->entry->message_size() == content.size());
    auto message = attempt->entry->message();
    REQUIRE(message);
    CHECK(message->size() == content.size());
    CHECK(message->has_delivered_to("bob@x"));
    CHECK(message->ends_with_newline());
    CHECK(read_message(*message) == content);
}

TEST_CASE("The message of a locked entry is read through a read-only descriptor, which cannot change the entry",
          "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto id = submit(*spool, "Subject: x\n\nbody\n");
    auto attempt = LockedEntry::lock(*spool, QueueFolder::queue, id);
    REQUIRE(attempt);
    REQUIRE(attempt->entry);
    auto message = attempt->entry->message();
    REQUIRE(message);
    REQUIRE(message->content_fd() >= 0);
    CHECK((::fcntl(message->content_fd(), F_GETFL) & O_ACCMODE) == O_RDONLY);
    CHECK(::pwrite(message->content_fd(), "X", 1, 0) < 0);
    CHECK(read_message(*message) == "Subject: x\n\nbody\n");
}

TEST_CASE("One message is never locked by two processes at a time", "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto id = submit(*spool, "x\n");
    auto first = LockedEntry::lock(*spool, QueueFolder::queue, id);
    REQUIRE(first);
    REQUIRE(first->outcome == LockAttempt::Outcome::locked);

    pid_t child = ::fork();
    if (child == 0) {
        auto second = LockedEntry::lock(*spool, QueueFolder::queue, id);
        ::_exit(second && second->outcome == LockAttempt::Outcome::busy ? 0 : 1);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);

    auto seen = read_entry(*spool, QueueFolder::queue, id);
    REQUIRE(seen);
    CHECK(seen->active);

    REQUIRE(first->entry->remove());
    first->entry.reset();
    auto after = LockedEntry::lock(*spool, QueueFolder::queue, id);
    REQUIRE(after);
    CHECK(after->outcome == LockAttempt::Outcome::gone);
}

TEST_CASE("State records are appended durably and read back by the next runner", "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto id = submit(*spool, "x\n", {"bob@x", "carol@x"});
    {
        auto attempt = LockedEntry::lock(*spool, QueueFolder::queue, id);
        REQUIRE(attempt->entry);
        StateRecord delivered{StateRecord::Kind::delivered, {0}, 100, 0, "2.0.0", "delivered to mailbox", ""};
        StateRecord deferred{StateRecord::Kind::deferred, {1}, 100, 400, "4.2.0", "mailbox locked", ""};
        REQUIRE(attempt->entry->append({delivered, deferred}));
        REQUIRE(attempt->entry->set_due(400));
        CHECK(attempt->entry->state().recipients[0].phase == RecipientPhase::delivered);
    }
    struct stat st {};
    REQUIRE(::stat(spool->entry_path(QueueFolder::queue, id).c_str(), &st) == 0);
    CHECK(st.st_mtime == 400);
    // A crash in mid-append leaves half a line: ignored, and cut before the next record.
    mailroom::test::spit(spool->entry_path(QueueFolder::queue, id), "delivered 1 5", true);
    auto attempt = LockedEntry::lock(*spool, QueueFolder::queue, id);
    REQUIRE(attempt);
    REQUIRE(attempt->entry);
    CHECK(attempt->entry->state().recipients[1].phase == RecipientPhase::deferred);
    StateRecord failed{StateRecord::Kind::failed, {1}, 500, 0, "5.1.1", "unknown", ""};
    REQUIRE(attempt->entry->append({failed}));
    attempt->entry.reset();
    auto seen = read_entry(*spool, QueueFolder::queue, id);
    REQUIRE(seen);
    CHECK(seen->state.recipients[1].phase == RecipientPhase::failed);
    CHECK(seen->state.recipients[1].attempts == 2);
    CHECK_FALSE(seen->active);
}

TEST_CASE("A corrupt entry is reported as such and can be quarantined", "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto good = submit(*spool, "x\n");
    std::string path = spool->entry_path(QueueFolder::queue, good);
    std::string content = slurp(path);
    for (std::string bad : {content.substr(0, 30), content.substr(0, content.size() - 10), std::string("garbage\n"),
                            "mailroom-queue 3" + content.substr(16)}) {
        INFO(bad);
        mailroom::test::spit(path, bad);
        auto attempt = LockedEntry::lock(*spool, QueueFolder::queue, good);
        REQUIRE_FALSE(attempt);
        CHECK(attempt.error().code.value() == EBADMSG);
        CHECK_FALSE(read_entry(*spool, QueueFolder::queue, good));
    }
    REQUIRE(spool->quarantine(good, QueueFolder::queue));
    CHECK(ids_in(*spool, QueueFolder::queue).empty());
    CHECK(ids_in(*spool, QueueFolder::quarantine) == std::vector<std::string>{good});
}

TEST_CASE("hold and release move a locked entry between queue/ and hold/", "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto id = submit(*spool, "x\n");
    auto attempt = LockedEntry::lock(*spool, QueueFolder::queue, id, true);
    REQUIRE(attempt->entry);
    REQUIRE(attempt->entry->move_to(QueueFolder::hold));
    CHECK(ids_in(*spool, QueueFolder::queue).empty());
    CHECK(ids_in(*spool, QueueFolder::hold) == std::vector<std::string>{id});
    // The old name is gone for any runner that opened it before the move.
    auto stale = LockedEntry::lock(*spool, QueueFolder::queue, id);
    REQUIRE(stale);
    CHECK(stale->outcome == LockAttempt::Outcome::gone);
    REQUIRE(attempt->entry->move_to(QueueFolder::queue));
    CHECK(ids_in(*spool, QueueFolder::queue) == std::vector<std::string>{id});
}

TEST_CASE("A submission wakes the daemon only when one reads the trigger", "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    CHECK_FALSE(spool->wake_daemon("ABCDEFGHIJKLMNO"));
    int reader = ::open(spool->trigger_path().c_str(), O_RDONLY | O_NONBLOCK);
    REQUIRE(reader >= 0);
    CHECK(spool->wake_daemon("ABCDEFGHIJKLMNO"));
    char buf[64] = {};
    CHECK(::read(reader, buf, sizeof buf) == 16);
    CHECK(std::string(buf) == "ABCDEFGHIJKLMNO\n");
    ::close(reader);
}

TEST_CASE("Temporary files of crashed submissions are swept once old", "[spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto writer = QueueWriter::begin(*spool);
    REQUIRE(writer);
    std::string name = tmp.path + "/tmp/" + writer->id();
    spool->sweep_tmp(::time(nullptr), 3600);
    CHECK(::access(name.c_str(), F_OK) == 0);
    spool->sweep_tmp(::time(nullptr) + 7200, 3600);
    CHECK(::access(name.c_str(), F_OK) != 0);
}

namespace {

// Fault injection for the folder fsync that ends a commit (after the rename).
mailroom::core::Result<void> failing_folder_sync(const std::string&) {
    return mailroom::core::unexpected_errno("fsync folder (injected)", EIO);
}

// Like a daemon's runner that locked the new entry between the rename and the
// failed folder sync: an open file description of its own holding the OFD lock.
int runner_fd = -1;
mailroom::core::Result<void> locked_then_failing_folder_sync(const std::string& folder) {
    auto names = mailroom::test::names_in(folder);
    REQUIRE(names.size() == 1);
    runner_fd = ::open((folder + "/" + names[0]).c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(runner_fd >= 0);
    struct flock request {};
    request.l_type = F_WRLCK;
    request.l_whence = SEEK_SET;
    REQUIRE(::fcntl(runner_fd, F_OFD_SETLK, &request) == 0);
    return failing_folder_sync(folder);
}

struct RestoreFolderSync {
    ~RestoreFolderSync() { set_commit_folder_sync_for_tests(nullptr); }
};

}  // namespace

TEST_CASE("A failed folder fsync after the rename takes the entry back: nothing is queued", "[spool]") {
    // sendmail says "nothing was queued" and exits 75 on any commit error; a caller
    // that retries must not find the first copy delivered as well.
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    RestoreFolderSync restore;
    set_commit_folder_sync_for_tests(failing_folder_sync);
    for (QueueFolder folder : {QueueFolder::queue, QueueFolder::hold}) {
        auto writer = QueueWriter::begin(*spool);
        REQUIRE(writer);
        REQUIRE(writer->write("Subject: s\n\nbody\n"));
        auto committed = writer->commit(envelope_for({"bob@x"}), folder);
        REQUIRE_FALSE(committed);
        CHECK(committed.error().errno_value() == EIO);
        CHECK(ids_in(*spool, folder).empty());
        CHECK(mailroom::test::names_in(tmp.path + "/tmp").empty());
    }
    set_commit_folder_sync_for_tests(nullptr);
    auto id = submit(*spool, "x\n");
    CHECK(ids_in(*spool, QueueFolder::queue) == std::vector<std::string>{id});
}

TEST_CASE("A failed folder fsync while a runner already holds the entry reports it queued", "[spool]") {
    // The runner delivers it: taking it back is impossible, and saying "nothing was
    // queued" would make the caller send it again.
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    RestoreFolderSync restore;
    set_commit_folder_sync_for_tests(locked_then_failing_folder_sync);
    auto writer = QueueWriter::begin(*spool);
    REQUIRE(writer);
    REQUIRE(writer->write("x\n"));
    CHECK(writer->commit(envelope_for({"bob@x"})));
    CHECK(ids_in(*spool, QueueFolder::queue) == std::vector<std::string>{writer->id()});
    ::close(runner_fd);
    runner_fd = -1;
}
