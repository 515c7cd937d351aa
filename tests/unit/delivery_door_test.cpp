// lib/smtp/delivery_door.hpp: lmtpd's door. Recipients are local users checked at
// RCPT; the text is held once; plan() gives each accepted recipient its mailbox
// write, or its outcome when there is none to make (a mail loop).
#include "smtp/delivery_door.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "mail/address.hpp"
#include "support/test_support.hpp"

using namespace mailroom;
using mailroom::smtp::DeliveryDoor;
using mailroom::smtp::DeliveryDoorSettings;
using mailroom::test::TempDir;

namespace {

class Accounts final : public core::UserDb {
public:
    std::map<std::string, core::UserInfo> by_name;
    std::vector<std::string> failing;  // names whose lookup fails (an NSS source down)
    mutable std::vector<std::string> asked;

    void add(const std::string& name, uid_t uid, gid_t gid) {
        by_name[name] = core::UserInfo{name, uid, gid, "/home/" + name, "/bin/sh", ""};
    }
    core::Result<std::optional<core::UserInfo>> find(std::string_view name) const override {
        asked.emplace_back(name);
        if (std::find(failing.begin(), failing.end(), name) != failing.end())
            return core::unexpected_errno("getpwnam_r " + std::string(name), EIO);
        auto it = by_name.find(std::string(name));
        return it == by_name.end() ? std::optional<core::UserInfo>() : std::optional<core::UserInfo>(it->second);
    }
    core::Result<std::optional<core::UserInfo>> find_uid(uid_t uid) const override {
        for (const auto& [name, info] : by_name) {
            if (info.uid == uid) return std::optional<core::UserInfo>(info);
        }
        return std::optional<core::UserInfo>();
    }
};

mail::Address address(std::string_view text) {
    auto parsed = mail::Address::parse(text, mail::ParseMode::bare, mail::ParseFlags{.allow_null = true});
    REQUIRE(parsed);
    return *parsed;
}

smtp::RcptTo rcpt(std::string_view text) { return smtp::RcptTo{address(text), {}}; }

// A door over bob (1001) and carol (1002), mydestination host.example and localhost.
struct Fixture {
    TempDir spool;
    TempDir tmp;
    Accounts users;
    core::FixedClock clock{1'700'000'000};
    DeliveryDoorSettings settings;
    smtp::Transaction transaction;
    std::optional<DeliveryDoor> door;

    Fixture() {
        users.add("bob", 1001, 100);
        users.add("carol", 1002, 200);
        settings.routing.myhostname = "host.example";
        settings.routing.mydestination = {"host.example", "localhost"};
        settings.routing.recipient_delimiter = "+";
        settings.local.mail_spool_dir = spool.path;
        settings.local.hostname = "host.example";
        settings.local.recipient_delimiter = "+";
        settings.tmp_dir = tmp.path;
        transaction.mail.sender = address("alice@remote.example");
        transaction.helo = "client.example";
        door.emplace(settings, users, clock);
        REQUIRE(door->open(transaction).is_ok());
    }

    mail::Status add(std::string_view recipient) {
        auto r = rcpt(recipient);
        auto status = door->add_recipient(transaction, r);
        if (status.is_ok()) transaction.recipients.push_back(r);
        return status;
    }

    // DATA, the text, the end of the data: the plan.
    smtp::PlannedDelivery deliver(std::string_view text) {
        auto id = door->begin_data(transaction);
        INFO((id ? "" : id.error().message()));
        REQUIRE(id);
        REQUIRE(door->write(text));
        auto plan = door->plan(transaction);
        INFO((plan ? "" : plan.error().message()));
        REQUIRE(plan);
        return std::move(*plan);
    }
};

const std::string message_text = "Subject: hello\nFrom: alice@remote.example\n\nHi there.\n";

std::string pread_all(int fd, uint64_t size) {
    std::string out(size, '\0');
    REQUIRE(::pread(fd, out.data(), size, 0) == static_cast<ssize_t>(size));
    return out;
}

}  // namespace

TEST_CASE("A recipient user@domain with the domain in mydestination is accepted when the user exists",
          "[delivery_door]") {
    Fixture f;
    auto status = f.add("bob@host.example");
    CHECK(status.is_ok());
    CHECK(status.code() == "2.1.5");
    CHECK(f.add("carol@localhost").is_ok());
    CHECK(f.add("bob@HOST.Example").is_ok());  // domains without regard to case
}

TEST_CASE("A bare user name is a local recipient", "[delivery_door]") {
    Fixture f;
    CHECK(f.add("bob").is_ok());
    auto plan = f.deliver(message_text);
    REQUIRE(plan.writes.size() == 1);
    CHECK(plan.writes[0].job.info.recipient == "bob@host.example");
}

TEST_CASE("user+ext goes to user (recipient_delimiter), the extension kept in Delivered-To", "[delivery_door]") {
    Fixture f;
    CHECK(f.add("bob+lists@host.example").is_ok());
    CHECK(std::find(f.users.asked.begin(), f.users.asked.end(), "bob") != f.users.asked.end());
    auto plan = f.deliver(message_text);
    REQUIRE(plan.writes.size() == 1);
    CHECK(plan.writes[0].as.name == "bob");
    CHECK(plan.writes[0].job.info.recipient == "bob+lists@host.example");
    CHECK(plan.writes[0].job.info.path == f.spool.path + "/bob");
}

TEST_CASE("An unknown user is refused 5.1.1 and is not planned", "[delivery_door]") {
    Fixture f;
    auto status = f.add("mallory@host.example");
    CHECK(status.is_permanent());
    CHECK(status.code() == "5.1.1");
    CHECK(status.to_reply_code() == 550);
    CHECK(f.add("bob@host.example").is_ok());
    auto plan = f.deliver(message_text);
    CHECK(plan.outcomes.size() == 1);
    REQUIRE(plan.writes.size() == 1);
    CHECK(plan.writes[0].as.name == "bob");
}

TEST_CASE("A domain not in mydestination is refused 5.1.2 without asking the user database", "[delivery_door]") {
    Fixture f;
    auto status = f.add("bob@elsewhere.example");
    CHECK(status.is_permanent());
    CHECK(status.code() == "5.1.2");
    CHECK(f.users.asked.empty());
}

TEST_CASE("A failed user lookup defers that recipient alone with 4.3.0", "[delivery_door]") {
    Fixture f;
    f.users.failing = {"carol"};
    auto status = f.add("carol@host.example");
    CHECK(status.is_temporary());
    CHECK(status.code() == "4.3.0");
    CHECK(status.to_reply_code() == 451);
    CHECK(f.add("bob@host.example").is_ok());
    auto plan = f.deliver(message_text);
    REQUIRE(plan.writes.size() == 1);
    CHECK(plan.writes[0].as.name == "bob");
}

TEST_CASE("begin_data gives a queue-ID-looking id, the door's id() until the transaction ends", "[delivery_door]") {
    Fixture f;
    CHECK(f.door->id().empty());
    REQUIRE(f.add("bob").is_ok());
    auto id = f.door->begin_data(f.transaction);
    REQUIRE(id);
    CHECK(mail::is_valid_queue_id(*id));
    CHECK(mail::queue_id_micros(*id) == f.clock.now_micros());
    CHECK(f.door->id() == *id);
    f.door->abort();
    CHECK(f.door->id().empty());
    REQUIRE(f.door->open(f.transaction).is_ok());
    f.transaction.recipients.clear();
    REQUIRE(f.add("bob").is_ok());
    auto second = f.door->begin_data(f.transaction);
    REQUIRE(second);
    CHECK(mail::is_valid_queue_id(*second));
    CHECK(*second != *id);
}

TEST_CASE("plan() gives one write per accepted recipient, each with its mailbox, sender and owner", "[delivery_door]") {
    Fixture f;
    REQUIRE(f.add("bob@host.example").is_ok());
    REQUIRE_FALSE(f.add("nobody-here@host.example").is_ok());
    REQUIRE(f.add("carol").is_ok());
    auto plan = f.deliver(message_text);
    CHECK(plan.size == message_text.size());
    CHECK(plan.content_fd >= 0);
    CHECK(pread_all(plan.content_fd, plan.size) == message_text);
    REQUIRE(plan.outcomes.size() == 2);
    CHECK_FALSE(plan.outcomes[0]);
    CHECK_FALSE(plan.outcomes[1]);
    REQUIRE(plan.writes.size() == 2);

    const auto& bob = plan.writes[0];
    CHECK(bob.recipient == 0);
    CHECK(bob.job.info.sender == "alice@remote.example");
    CHECK(bob.job.info.recipient == "bob@host.example");
    CHECK(bob.job.info.path == f.spool.path + "/bob");
    CHECK(bob.job.format == mail::MailboxFormat::mbox);
    CHECK(bob.job.info.uid == 1001);
    CHECK(bob.job.info.gid == 100);
    CHECK(bob.job.info.hostname == "host.example");
    CHECK(bob.job.info.arrival == f.clock.now());
    CHECK(bob.as.name == "bob");
    CHECK(bob.as.credentials.uid == 1001);
    CHECK(bob.as.credentials.gid == 100);
    REQUIRE(bob.as.only);
    CHECK(bob.as.only->path == f.spool.path + "/bob");
    CHECK(bob.as.only->format == mail::MailboxFormat::mbox);

    const auto& carol = plan.writes[1];
    CHECK(carol.recipient == 1);
    CHECK(carol.job.info.recipient == "carol@host.example");
    CHECK(carol.job.info.path == f.spool.path + "/carol");
    CHECK(carol.job.info.uid == 1002);
    CHECK(carol.job.info.gid == 200);
    CHECK(carol.as.name == "carol");
    REQUIRE(carol.as.only);
    CHECK(carol.as.only->path == carol.job.info.path);
}

TEST_CASE("A write's path and format come from mailbox_location: home_mailbox Maildir when set", "[delivery_door]") {
    Fixture f;
    f.settings.local.home_mailbox = "Maildir/";
    REQUIRE(f.add("bob").is_ok());
    auto plan = f.deliver(message_text);
    REQUIRE(plan.writes.size() == 1);
    const auto& write = plan.writes[0];
    CHECK(write.job.info.path == "/home/bob/Maildir");
    CHECK(write.job.format == mail::MailboxFormat::maildir);
    REQUIRE(write.as.only);
    CHECK(write.as.only->path == "/home/bob/Maildir");
    CHECK(write.as.only->format == mail::MailboxFormat::maildir);
}

TEST_CASE("The null sender is planned as the empty sender", "[delivery_door]") {
    Fixture f;
    f.transaction.mail.sender = mail::Address();
    REQUIRE(f.add("bob").is_ok());
    auto plan = f.deliver(message_text);
    REQUIRE(plan.writes.size() == 1);
    CHECK(plan.writes[0].job.info.sender.empty());
}

TEST_CASE("A message that already has Delivered-To: the recipient is a loop: 5.4.6 for it and no write",
          "[delivery_door]") {
    Fixture f;
    REQUIRE(f.add("bob@host.example").is_ok());
    REQUIRE(f.add("carol@host.example").is_ok());
    auto plan = f.deliver("Delivered-To: bob@host.example\nSubject: again\n\nloop\n");
    REQUIRE(plan.outcomes.size() == 2);
    REQUIRE(plan.outcomes[0]);
    CHECK(plan.outcomes[0]->is_permanent());
    CHECK(plan.outcomes[0]->code() == "5.4.6");
    CHECK_FALSE(plan.outcomes[1]);
    REQUIRE(plan.writes.size() == 1);
    CHECK(plan.writes[0].recipient == 1);
    CHECK(plan.writes[0].as.name == "carol");
}

TEST_CASE("The loop check reads Delivered-To without regard to case", "[delivery_door]") {
    Fixture f;
    REQUIRE(f.add("bob").is_ok());
    auto plan = f.deliver("delivered-to: BOB@Host.Example\n\nloop\n");
    REQUIRE(plan.outcomes.size() == 1);
    REQUIRE(plan.outcomes[0]);
    CHECK(plan.outcomes[0]->code() == "5.4.6");
    CHECK(plan.writes.empty());
}

TEST_CASE("A large message is held once, spilled past the memory limit, and planned whole", "[delivery_door]") {
    Fixture f;
    REQUIRE(f.add("bob").is_ok());
    std::string big = "Subject: big\n\n";
    while (big.size() < smtp::HeldMessage::default_memory_limit + 4096) big += "a line of the body that repeats\n";
    auto plan = f.deliver(big);
    CHECK(plan.size == big.size());
    CHECK(pread_all(plan.content_fd, plan.size) == big);
    CHECK(mailroom::test::names_in(f.tmp.path).empty());
    CHECK(plan.writes.size() == 1);
}

TEST_CASE("abort() drops the held text and the recipients, plan() then has nothing to deliver", "[delivery_door]") {
    Fixture f;
    REQUIRE(f.add("bob").is_ok());
    auto plan = f.deliver(message_text);
    const int held_fd = plan.content_fd;
    REQUIRE(::fcntl(held_fd, F_GETFD) != -1);
    f.door->abort();
    CHECK(::fcntl(held_fd, F_GETFD) == -1);  // the held text's descriptor is closed
    CHECK_FALSE(f.door->plan(f.transaction));
    CHECK_FALSE(f.door->write("more"));

    // A new transaction starts with no recipients of the old one.
    REQUIRE(f.door->open(f.transaction).is_ok());
    REQUIRE(f.door->begin_data(f.transaction));
    REQUIRE(f.door->write(message_text));
    auto empty = f.door->plan(f.transaction);
    REQUIRE(empty);
    CHECK(empty->outcomes.empty());
    CHECK(empty->writes.empty());
}

TEST_CASE("open() starts a new transaction: the previous one's recipients are dropped", "[delivery_door]") {
    Fixture f;
    REQUIRE(f.add("bob").is_ok());
    REQUIRE(f.door->open(f.transaction).is_ok());
    f.transaction.recipients.clear();
    REQUIRE(f.add("carol").is_ok());
    auto plan = f.deliver(message_text);
    REQUIRE(plan.writes.size() == 1);
    CHECK(plan.writes[0].as.name == "carol");
}

TEST_CASE("Text written before the data began is refused", "[delivery_door]") {
    Fixture f;
    REQUIRE(f.add("bob").is_ok());
    CHECK_FALSE(f.door->write("too early\n"));
    CHECK_FALSE(f.door->plan(f.transaction));
}
