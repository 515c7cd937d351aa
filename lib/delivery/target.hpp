// Target: one leaf of a delivery, what the expander hands the launcher. Four kinds:
// a local user's mailbox, a file appended in mbox format (`/path` in aliases or
// .forward), a command run by /bin/sh (`|command`), or a remote address (carried
// only: the runner defers it). Each target knows the address it was reached through
// (Delivered-To, $RECIPIENT, loop detection), where it was named (provenance: a
// string like "aliases:12", "~bob/.forward:1", "-" for a recipient itself), and the
// user it runs as with that user's Credentials.
//
// Invariants: a mailbox runs as its owner (credentials empty: the launcher derives
// them at delivery time, the user's groups plus the mail folder's group); a file or
// command runs as the user and credentials its builder gave (the .forward owner,
// default_privs, an :include: file's owner), never trusted from the spool. A Target
// is a value: building one checks nothing on disk and starts nothing.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "core/privilege.hpp"
#include "core/users.hpp"
#include "delivery/mailbox_location.hpp"

namespace mailroom::mail {


struct MailboxTarget {
    MailboxLocation location;
};
struct FileTarget {
    std::string path;  // absolute
};
struct CommandTarget {
    std::string command;  // given to /bin/sh -c
};
struct RemoteTarget {
    std::string address;
};

struct Target {
    // The address this target was reached through: user@domain, or the alias.
    std::string address;
    // Where it was named: "aliases:12", "~bob/.forward:1", "-".
    std::string provenance = "-";
    // Who it runs as: HOME, USER, SHELL of a command; the mailbox owner.
    core::UserInfo user;
    // File and command: required. Mailbox: empty (derived at delivery).
    std::optional<core::Credentials> credentials;
    std::variant<MailboxTarget, FileTarget, CommandTarget, RemoteTarget> what;

    // The kinds, in the order of `what`'s alternatives.
    enum class Kind { mailbox, file, command, remote };
    Kind kind() const { return static_cast<Kind>(what.index()); }
    // "mailbox /var/mail/bob", "maildir /home/bob/Maildir", "file /tmp/x",
    // "command \"procmail -a x\"", "remote bob@example.org": for log lines and traces.
    std::string describe() const;

    static Target mailbox(std::string address, core::UserInfo user, MailboxLocation location,
                          std::string provenance = "-");
    static Target file(std::string address, std::string path, core::UserInfo user, core::Credentials credentials,
                       std::string provenance);
    static Target command(std::string address, std::string command, core::UserInfo user,
                          core::Credentials credentials, std::string provenance);
    static Target remote(std::string address, std::string provenance = "-");
};

}  // namespace mailroom::mail
