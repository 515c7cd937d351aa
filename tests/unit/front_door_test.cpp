// FrontDoor: the queue's push-style transaction (sender, recipients, bytes, commit)
// that sendmail and the SMTP listener share; what it refuses and with which Status,
// and what the committed entry holds.
#include "queue/front_door.hpp"

#include <unistd.h>

#include <cerrno>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::core::Error;
using mailroom::test::names_in;
using mailroom::test::TempDir;

namespace {

struct Fixture {
    TempDir tmp;
    Spool spool = open_spool(tmp.path + "/spool");

    static Spool open_spool(const std::string& dir) {
        auto spool = Spool::open(dir);
        REQUIRE(spool);
        return std::move(*spool);
    }
    FrontDoorSettings settings() const {
        return FrontDoorSettings{
            .default_domain = "host.example", .arrival_micros = 1'763'756'614'123'456, .submitter_uid = 1000};
    }
    FrontDoor door(FrontDoorSettings s) {
        auto door = FrontDoor::open(spool, std::move(s));
        REQUIRE(door);
        return std::move(*door);
    }
    FrontDoor door() { return door(settings()); }
    Envelope committed_envelope(const std::string& id) {
        auto entry = read_entry(spool, QueueFolder::queue, id);
        REQUIRE(entry);
        return entry->envelope;
    }
    std::vector<std::string> tmp_files() const { return names_in(spool.tmp_dir()); }
    std::vector<std::string> queued_files() const { return names_in(spool.folder_path(QueueFolder::queue)); }
};

Envelope commit_with(Fixture& f, std::string_view sender, const std::vector<std::string>& recipients) {
    FrontDoor door = f.door();
    REQUIRE(door.set_sender(sender).is_ok());
    for (const auto& r : recipients) REQUIRE(door.add_recipient(r).is_ok());
    REQUIRE(door.write("Subject: s\n\nbody\n"));
    auto committed = door.commit();
    REQUIRE(committed);
    return f.committed_envelope(committed->id);
}

}  // namespace

TEST_CASE("The queue ID is known as soon as the front door opens, before any byte", "[front_door]") {
    Fixture f;
    FrontDoor door = f.door();
    CHECK(is_valid_queue_id(door.id()));
    CHECK(f.tmp_files() == std::vector<std::string>{door.id()});
    CHECK(door.arrival_micros() == 1'763'756'614'123'456);
}

TEST_CASE("The null sender stays null, a sender without a domain gets the default domain", "[front_door]") {
    Fixture f;
    CHECK(commit_with(f, "", {"bob"}).sender.empty());
    CHECK(commit_with(f, "<>", {"bob"}).sender.empty());
    CHECK(commit_with(f, "root", {"bob"}).sender == "root@host.example");
    CHECK(commit_with(f, "alice@elsewhere.example", {"bob"}).sender == "alice@elsewhere.example");
}

TEST_CASE("Recipients are qualified and kept once each, in order, the first one kept", "[front_door]") {
    Fixture f;
    FrontDoor door = f.door();
    REQUIRE(door.set_sender("alice").is_ok());
    CHECK(door.add_recipient("bob", RecipientDsn{.notify = RecipientDsn::notify_success}).code() == "2.1.5");
    CHECK(door.add_recipient("carol@far.example").code() == "2.1.5");
    Status again = door.add_recipient("bob@host.example", RecipientDsn{.notify = RecipientDsn::notify_never});
    CHECK(again.is_ok());
    CHECK(again.code() == "2.1.5");
    CHECK(door.recipients() == 2);
    REQUIRE(door.write("x\n"));
    auto committed = door.commit();
    REQUIRE(committed);
    CHECK(committed->recipients == 2);
    Envelope e = f.committed_envelope(committed->id);
    CHECK(e.recipients == std::vector<std::string>{"bob@host.example", "carol@far.example"});
    CHECK(e.dsn(0).notify == RecipientDsn::notify_success);
    CHECK(e.dsn(1).empty());
}

TEST_CASE("Without a default domain an address without one stays as it is", "[front_door]") {
    Fixture f;
    auto s = f.settings();
    s.default_domain.clear();
    FrontDoor door = f.door(s);
    REQUIRE(door.set_sender("root").is_ok());
    REQUIRE(door.add_recipient("bob").is_ok());
    auto committed = door.commit();
    REQUIRE(committed);
    Envelope e = f.committed_envelope(committed->id);
    CHECK(e.sender == "root");
    CHECK(e.recipients == std::vector<std::string>{"bob"});
}

TEST_CASE("The committed entry keeps the DSN fields, the client facts, the uid and the arrival time", "[front_door]") {
    Fixture f;
    FrontDoor door = f.door();
    REQUIRE(door.set_sender("alice@host.example", DsnReturn::hdrs, "QQ314159+2B").is_ok());
    REQUIRE(door.add_recipient("bob@host.example",
                               RecipientDsn{.notify = RecipientDsn::notify_failure | RecipientDsn::notify_delay,
                                            .orcpt = "rfc822;bob@host.example"})
                .is_ok());
    REQUIRE(door.add_recipient("carol@host.example").is_ok());
    door.set_client(ClientFacts{.name = "mx.far.example", .address = "192.0.2.7", .helo = "mx.far.example",
                                .protocol = "ESMTPSA", .auth = "alice", .tls_protocol = "TLSv1.3",
                                .tls_cipher = "TLS_AES_256_GCM_SHA384"});
    REQUIRE(door.write("Subject: s\n\nbody\n"));
    auto committed = door.commit();
    REQUIRE(committed);
    CHECK(committed->size == 17);
    CHECK(committed->id == door.id());

    auto entry = read_entry(f.spool, QueueFolder::queue, committed->id);
    REQUIRE(entry);
    CHECK(entry->message_size == 17);
    const Envelope& e = entry->envelope;
    CHECK(e.ret == DsnReturn::hdrs);
    CHECK(e.envid == "QQ314159+2B");
    CHECK(e.dsn(0) == RecipientDsn{.notify = RecipientDsn::notify_failure | RecipientDsn::notify_delay,
                                   .orcpt = "rfc822;bob@host.example"});
    CHECK(e.dsn(1).empty());
    CHECK(e.client_name == "mx.far.example");
    CHECK(e.client_address == "192.0.2.7");
    CHECK(e.helo == "mx.far.example");
    CHECK(e.protocol == "ESMTPSA");
    CHECK(e.auth == "alice");
    CHECK(e.tls_protocol == "TLSv1.3");
    CHECK(e.tls_cipher == "TLS_AES_256_GCM_SHA384");
    CHECK(e.submitter_uid == 1000);
    CHECK(e.arrival_micros == 1'763'756'614'123'456);
    CHECK(f.tmp_files().empty());
}

TEST_CASE("One recipient more than max_recipients is refused 4.5.3, a duplicate still is not", "[front_door]") {
    Fixture f;
    auto s = f.settings();
    s.max_recipients = 2;
    FrontDoor door = f.door(s);
    REQUIRE(door.add_recipient("a").is_ok());
    REQUIRE(door.add_recipient("b").is_ok());
    Status over = door.add_recipient("c");
    CHECK(over.is_temporary());
    CHECK(over.code() == "4.5.3");
    CHECK(over.to_reply_code() == 452);
    CHECK(door.add_recipient("a@host.example").is_ok());
    CHECK(door.recipients() == 2);
}

TEST_CASE("A message over size_limit is refused with EMSGSIZE, stays refused, and nothing is queued", "[front_door]") {
    Fixture f;
    auto s = f.settings();
    s.size_limit = 10;
    {
        FrontDoor door = f.door(s);
        REQUIRE(door.add_recipient("bob").is_ok());
        REQUIRE(door.write("12345"));
        REQUIRE(door.write("67890"));  // exactly the limit is fine
        auto over = door.write("x");
        REQUIRE_FALSE(over);
        CHECK(over.error().errno_value() == EMSGSIZE);
        CHECK(door.size() == 10);  // nothing of the refused bytes was written
        auto later = door.write("");
        REQUIRE_FALSE(later);
        CHECK(later.error().errno_value() == EMSGSIZE);
        auto committed = door.commit();
        REQUIRE_FALSE(committed);
        CHECK(committed.error().errno_value() == EMSGSIZE);
    }
    CHECK(f.tmp_files().empty());
    CHECK(f.queued_files().empty());
}

TEST_CASE("A write that would pass the limit writes none of its bytes", "[front_door]") {
    Fixture f;
    auto s = f.settings();
    s.size_limit = 10;
    FrontDoor door = f.door(s);
    REQUIRE(door.write("1234"));
    auto over = door.write("12345678");
    REQUIRE_FALSE(over);
    CHECK(over.error().errno_value() == EMSGSIZE);
    CHECK(door.size() == 4);
}

TEST_CASE("A transaction abandoned without commit leaves no file in tmp/ or queue/", "[front_door]") {
    Fixture f;
    {
        FrontDoor door = f.door();
        REQUIRE(door.set_sender("alice").is_ok());
        REQUIRE(door.add_recipient("bob").is_ok());
        REQUIRE(door.write(std::string(200 * 1024, 'x')));  // past the writer's buffer: on disk
        CHECK(f.tmp_files().size() == 1);
    }
    CHECK(f.tmp_files().empty());
    CHECK(f.queued_files().empty());
}

TEST_CASE("A commit without a recipient is refused with EDESTADDRREQ and queues nothing", "[front_door]") {
    Fixture f;
    FrontDoor door = f.door();
    REQUIRE(door.set_sender("alice").is_ok());
    REQUIRE(door.write("x\n"));
    auto refused = door.commit();
    REQUIRE_FALSE(refused);
    CHECK(refused.error().errno_value() == EDESTADDRREQ);
    CHECK(f.queued_files().empty());
    // The transaction is still open: a recipient may come yet.
    REQUIRE(door.add_recipient("bob").is_ok());
    auto committed = door.commit();
    REQUIRE(committed);
    CHECK(f.queued_files() == std::vector<std::string>{committed->id});
}

TEST_CASE("A committed door refuses more bytes and a second commit", "[front_door]") {
    Fixture f;
    FrontDoor door = f.door();
    REQUIRE(door.add_recipient("bob").is_ok());
    REQUIRE(door.commit());
    auto write = door.write("x");
    REQUIRE_FALSE(write);
    CHECK(write.error().errno_value() == EINVAL);
    auto again = door.commit();
    REQUIRE_FALSE(again);
    CHECK(again.error().errno_value() == EINVAL);
    CHECK(f.queued_files().size() == 1);
}

TEST_CASE("The commit in steps: named in queue/ only after the data sync, queued after the folder sync",
          "[front_door]") {
    Fixture f;
    FrontDoor door = f.door();
    REQUIRE(door.add_recipient("bob").is_ok());
    REQUIRE(door.write("Subject: steps\n\nbody\n"));
    auto data_fd = door.stage_commit();
    REQUIRE(data_fd);
    // Staged: header and envelope written, still only in tmp/.
    CHECK(f.tmp_files() == std::vector<std::string>{door.id()});
    CHECK(f.queued_files().empty());
    REQUIRE(::fdatasync(*data_fd) == 0);
    auto folder_fd = door.publish({});
    REQUIRE(folder_fd);
    CHECK(f.tmp_files().empty());
    CHECK(f.queued_files() == std::vector<std::string>{door.id()});
    auto committed = door.settle({});
    REQUIRE(committed);
    CHECK(committed->id == door.id());
    CHECK(f.committed_envelope(committed->id).recipients == std::vector<std::string>{"bob@host.example"});
    CHECK_FALSE(door.commit());  // a committed door refuses a second commit
}

TEST_CASE("A failed data sync never lets the entry be named in queue/, and the door stays failed", "[front_door]") {
    Fixture f;
    FrontDoor door = f.door();
    REQUIRE(door.add_recipient("bob").is_ok());
    REQUIRE(door.write("x\n"));
    REQUIRE(door.stage_commit());
    auto published = door.publish(mailroom::core::unexpected_errno("fsync tmp/X", EIO));
    REQUIRE_FALSE(published);
    CHECK(published.error().errno_value() == EIO);
    CHECK(f.queued_files().empty());
    // Sticky: the temporary file's state is unknown, nothing more is tried with it.
    CHECK_FALSE(door.publish({}));
    CHECK_FALSE(door.settle({}));
    CHECK(f.queued_files().empty());
}

TEST_CASE("A failed folder sync takes the entry back out of queue/ and reports nothing queued", "[front_door]") {
    Fixture f;
    FrontDoor door = f.door();
    REQUIRE(door.add_recipient("bob").is_ok());
    REQUIRE(door.write("x\n"));
    REQUIRE(door.stage_commit());
    REQUIRE(door.publish({}));
    REQUIRE(f.queued_files().size() == 1);
    auto settled = door.settle(mailroom::core::unexpected_errno("fsync folder queue", EIO));
    REQUIRE_FALSE(settled);
    CHECK(settled.error().errno_value() == EIO);
    CHECK(f.queued_files().empty());
    CHECK(f.tmp_files().empty());
}

TEST_CASE("A bad recipient address is refused 5.1.3, a bad sender 5.1.7", "[front_door]") {
    Fixture f;
    FrontDoor door = f.door();
    for (const char* bad : {"", "<>", "a b@host", "bob@", "x\r\n@host"}) {
        Status s = door.add_recipient(bad);
        INFO(bad);
        CHECK(s.is_permanent());
        CHECK(s.code() == "5.1.3");
        CHECK(s.to_reply_code() == 553);
        CHECK(s.to_sysexit() == 65);
    }
    for (const char* bad : {"a b@host", "bob@", "john.doe.@host"}) {
        Status s = door.set_sender(bad);
        INFO(bad);
        CHECK(s.is_permanent());
        CHECK(s.code() == "5.1.7");
    }
    CHECK(door.recipients() == 0);
}

TEST_CASE("A bad ORCPT or NOTIFY is refused 5.5.4, a bad ENVID too", "[front_door]") {
    Fixture f;
    FrontDoor door = f.door();
    for (const char* orcpt : {"bob@host", ";bob@host", "rfc822;bob host", "rfc822;a+zz"}) {
        INFO(orcpt);
        CHECK(door.add_recipient("bob", RecipientDsn{.orcpt = orcpt}).code() == "5.5.4");
    }
    CHECK(door.add_recipient("bob", RecipientDsn{.orcpt = "rfc822;" + std::string(600, 'a')}).code() == "5.5.4");
    CHECK(door.add_recipient("bob", RecipientDsn{.notify = RecipientDsn::notify_never | RecipientDsn::notify_failure})
              .code() == "5.5.4");
    CHECK(door.recipients() == 0);
    CHECK(door.set_sender("alice", DsnReturn::full, "has space").code() == "5.5.4");
    CHECK(door.set_sender("alice", DsnReturn::full, std::string(101, 'a')).code() == "5.5.4");
    CHECK(door.set_sender("alice", DsnReturn::full, "ok+2Bid").is_ok());
}

TEST_CASE("status_of: over size 5.3.4 (552), no recipient 5.5.1, input 5.6.0, a spool failure temporary", "[front_door]") {
    Status big = FrontDoor::status_of(mailroom::core::errno_error("too big", EMSGSIZE));
    CHECK(big.is_permanent());
    CHECK(big.code() == "5.3.4");
    CHECK(big.to_reply_code() == 552);

    Status none = FrontDoor::status_of(mailroom::core::errno_error("none", EDESTADDRREQ));
    CHECK(none.is_permanent());
    CHECK(none.code() == "5.5.1");

    Status input = FrontDoor::status_of(mailroom::core::input_error("bad address in To: \"a b\""));
    CHECK(input.is_permanent());
    CHECK(input.code() == "5.6.0");
    CHECK(input.text() == "bad address in To: \"a b\"");
    CHECK(input.to_sysexit() == 65);

    Status full = FrontDoor::status_of(mailroom::core::errno_error("write", ENOSPC));
    CHECK(full.is_temporary());
    CHECK(full.code() == "4.3.1");
    Status io = FrontDoor::status_of(mailroom::core::errno_error("fsync", EIO));
    CHECK(io.is_temporary());
    CHECK(io.to_sysexit() == 75);
}

TEST_CASE("qualified_address appends the default domain to a bare name only", "[front_door]") {
    CHECK(qualified_address("bob", "host.example") == "bob@host.example");
    CHECK(qualified_address("bob@far.example", "host.example") == "bob@far.example");
    CHECK(qualified_address("bob", "") == "bob");
    CHECK(qualified_address("a b", "host.example") == "a b");  // not an address: as given
}
