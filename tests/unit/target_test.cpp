// delivery/target: the four kinds of target, what each carries, and the command
// environment built from the address a target was reached through.
#include "delivery/target.hpp"

#include <catch2/catch.hpp>

#include "delivery/launcher.hpp"

using namespace mailroom::mail;
using mailroom::core::Credentials;
using mailroom::core::UserInfo;

namespace {
UserInfo bob() { return UserInfo{"bob", 1001, 1001, "/home/bob", "/bin/zsh", "Bob"}; }
}  // namespace

TEST_CASE("a target is a mailbox, a file, a command or a remote address, each with its address and provenance",
          "[target]") {
    auto mailbox = Target::mailbox("bob@host.example", bob(), {"/var/mail/bob", MailboxFormat::mbox});
    CHECK(mailbox.kind() == Target::Kind::mailbox);
    CHECK(mailbox.provenance == "-");
    CHECK_FALSE(mailbox.credentials);  // derived at delivery from the user
    CHECK(mailbox.describe() == "mailbox /var/mail/bob");
    auto maildir = Target::mailbox("bob@host.example", bob(), {"/home/bob/Maildir", MailboxFormat::maildir});
    CHECK(maildir.describe() == "maildir /home/bob/Maildir");

    auto file = Target::file("bob@host.example", "/home/bob/archive", bob(), Credentials{1001, 1001, {1001}},
                             "~bob/.forward:2");
    CHECK(file.kind() == Target::Kind::file);
    CHECK(file.provenance == "~bob/.forward:2");
    REQUIRE(file.credentials);
    CHECK(file.credentials->uid == 1001);
    CHECK(file.describe() == "file /home/bob/archive");

    auto command = Target::command("list@host.example", "/usr/bin/list-post x", UserInfo{"nobody", 65534, 65534, "/", "", ""},
                                   Credentials{65534, 65534, {}}, "aliases:12");
    CHECK(command.kind() == Target::Kind::command);
    CHECK(command.user.name == "nobody");
    CHECK(std::get<CommandTarget>(command.what).command == "/usr/bin/list-post x");
    CHECK(command.describe() == "command \"/usr/bin/list-post x\"");

    auto remote = Target::remote("carol@elsewhere.example", "aliases:3");
    CHECK(remote.kind() == Target::Kind::remote);
    CHECK(remote.address == "carol@elsewhere.example");
    CHECK(remote.describe() == "remote carol@elsewhere.example");
}

TEST_CASE("a command's environment is exactly SENDER RECIPIENT ORIGINAL_RECIPIENT USER HOME LOCAL EXTENSION DOMAIN SHELL PATH",
          "[target]") {
    DeliveryContext context;
    context.sender = "alice@remote.example";
    context.recipient_delimiter = "+";
    auto target = Target::command("bob+lists@host.example", "x", bob(), Credentials{1001, 1001, {}}, "-");
    std::vector<std::string> expected = {
        "SENDER=alice@remote.example", "RECIPIENT=bob+lists@host.example",
        "ORIGINAL_RECIPIENT=bob+lists@host.example",  // none given: the address itself
        "USER=bob", "HOME=/home/bob", "LOCAL=bob+lists", "EXTENSION=lists", "DOMAIN=host.example",
        "SHELL=/bin/zsh", "PATH=/usr/bin:/bin"};
    CHECK(command_environment(target, context) == expected);

    context.sender = "";
    context.original_recipient = "list@host.example";
    context.recipient_delimiter = "";
    auto bare = Target::command("owner-list", "x", UserInfo{"nobody", 65534, 65534, "/", "", ""},
                                Credentials{65534, 65534, {}}, "-");
    std::vector<std::string> expected_bare = {
        "SENDER=", "RECIPIENT=owner-list", "ORIGINAL_RECIPIENT=list@host.example", "USER=nobody", "HOME=/",
        "LOCAL=owner-list", "EXTENSION=", "DOMAIN=", "SHELL=/bin/sh", "PATH=/usr/bin:/bin"};
    CHECK(command_environment(bare, context) == expected_bare);
}
