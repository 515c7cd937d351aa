#include <catch2/catch.hpp>

#include "delivery/local_delivery.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::core::UserInfo;

namespace {
UserInfo bob() {
    UserInfo user;
    user.name = "bob";
    user.uid = 1001;
    user.gid = 1001;
    user.home = "/home/bob";
    return user;
}
}  // namespace

TEST_CASE("mbox mailboxes are $mail_spool_dir/USER") {
    LocalDeliverySettings settings;
    auto where = mailbox_location(settings, bob());
    CHECK(where.path == "/var/mail/bob");
    CHECK(where.format == MailboxFormat::mbox);
}

TEST_CASE("with mailbox_format = maildir the mailbox is $mail_spool_dir/USER/") {
    LocalDeliverySettings settings;
    settings.format = MailboxFormat::maildir;
    auto where = mailbox_location(settings, bob());
    CHECK(where.path == "/var/mail/bob");
    CHECK(where.format == MailboxFormat::maildir);
}

TEST_CASE("home_mailbox is relative to the home, a trailing slash meaning Maildir") {
    LocalDeliverySettings settings;
    settings.home_mailbox = "Maildir/";
    auto maildir = mailbox_location(settings, bob());
    CHECK(maildir.path == "/home/bob/Maildir");
    CHECK(maildir.format == MailboxFormat::maildir);
    settings.home_mailbox = "Mailbox";
    auto mbox = mailbox_location(settings, bob());
    CHECK(mbox.path == "/home/bob/Mailbox");
    CHECK(mbox.format == MailboxFormat::mbox);
}

TEST_CASE("mda -m overrides the format and -o the path") {
    LocalDeliverySettings settings;
    CHECK(mailbox_location(settings, bob(), MailboxFormat::maildir).format == MailboxFormat::maildir);
    auto o = mailbox_location(settings, bob(), std::nullopt, std::string("/srv/box/"));
    CHECK(o.path == "/srv/box");
    CHECK(o.format == MailboxFormat::maildir);
    auto both = mailbox_location(settings, bob(), MailboxFormat::mbox, std::string("/srv/box/"));
    CHECK(both.format == MailboxFormat::mbox);
}

TEST_CASE("a message already delivered to the same recipient is a mail loop, 5.4.6") {
    auto message = Message::from_string("Delivered-To: bob@host.example\nSubject: x\n\nbody\n", {});
    REQUIRE(message);
    auto target = Target::mailbox("bob@host.example", bob(), {"/nonexistent/bob", MailboxFormat::mbox});
    auto status = deliver(target, *message, DeliveryContext::from_settings(LocalDeliverySettings{})).status;
    CHECK(status.is_permanent());
    CHECK(status.code() == "5.4.6");
    CHECK(status.to_sysexit() == 65);
}

TEST_CASE("the envelope sender is -f, else the From_ line, else the caller") {
    auto with_from = Message::from_string("From carol@x.example Sat Nov 21 20:23:34 2026\n\nbody\n", {});
    auto without = Message::from_string("Subject: s\n\nbody\n", {});
    REQUIRE(with_from);
    REQUIRE(without);
    CHECK(*envelope_sender(std::string("alice@y.example"), *with_from, "root") == "alice@y.example");
    CHECK(*envelope_sender(std::nullopt, *with_from, "root") == "carol@x.example");
    CHECK(*envelope_sender(std::nullopt, *without, "root") == "root");
    CHECK(*envelope_sender(std::string(""), *without, "root") == "");
    CHECK(*envelope_sender(std::string("<>"), *with_from, "root") == "");
    CHECK(*envelope_sender(std::string("<bob@z.example>"), *without, "root") == "bob@z.example");
    auto bad = envelope_sender(std::string("a..b@@x"), *without, "root");
    REQUIRE_FALSE(bad);
    CHECK_THAT(bad.error().message(), Catch::StartsWith("bad sender address 'a..b@@x' ("));
}

TEST_CASE("the delivery settings come from mailroom.conf, command_timeout and recipient_delimiter included") {
    auto config = mailroom::core::Config::parse(
        "mailbox_format = maildir\nmail_spool_dir = /srv/mail\nmailbox_lock = dotlock\nlock_timeout = 7s\n"
        "myhostname = mx.example\ncommand_timeout = 90s\nrecipient_delimiter = -\n",
        "t.conf");
    REQUIRE(config);
    auto settings = LocalDeliverySettings::from_config(*config);
    CHECK(settings.format == MailboxFormat::maildir);
    CHECK(settings.mail_spool_dir == "/srv/mail");
    CHECK(settings.locks.order == std::vector<LockKind>{LockKind::dotlock});
    CHECK(settings.locks.timeout == std::chrono::seconds(7));
    CHECK(settings.command_timeout == std::chrono::seconds(90));
    CHECK(settings.recipient_delimiter == "-");
    auto context = DeliveryContext::from_settings(settings);
    CHECK(context.hostname == "mx.example");
    CHECK(context.command_timeout == std::chrono::seconds(90));
    CHECK(context.recipient_delimiter == "-");
    CHECK(context.isolation == Isolation::child_process);
}

TEST_CASE("When run as root it writes each mailbox as that user, with a child per delivery the caller stays root",
          "[root]") {
    if (::geteuid() != 0) {
        WARN("skipped: writing a mailbox as another user needs root");
        return;
    }
    mailroom::test::TempDir tmp;
    REQUIRE(::chmod(tmp.path.c_str(), 01777) == 0);
    UserInfo user = bob();
    user.uid = user.gid = 20061;
    user.home = tmp.path;
    LocalDeliverySettings settings;
    settings.mail_spool_dir = tmp.path;
    auto message = Message::from_string("Subject: x\n\nbody\n", {});
    REQUIRE(message);
    DeliveryContext context = DeliveryContext::from_settings(settings);
    context.sender = "alice@x.example";
    auto status = deliver(Target::mailbox("bob@host.example", user, mailbox_location(settings, user)), *message, context).status;
    CHECK(status.is_ok());
    CHECK(status.text() == "delivered to mailbox");
    CHECK(::geteuid() == 0);
    CHECK(::getuid() == 0);
    struct stat st {};
    REQUIRE(::stat((tmp.path + "/bob").c_str(), &st) == 0);
    CHECK(st.st_uid == 20061);
    CHECK_THAT(mailroom::test::slurp(tmp.path + "/bob"), Catch::Contains("Delivered-To: bob@host.example\n"));
}
