// Leaf: one final target of a recipient's expansion (a mailbox, a file, a command,
// a remote address, or an error to bounce), with where it was named. The expander
// makes them, the queue entry records them (queue_entry.hpp), run_as and the
// launcher deliver them.
// Invariant: a leaf never carries the user it runs as (run_as.hpp recomputes it
// from the provenance), so nothing written in the spool can choose it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "mail/status.hpp"

namespace mailroom::mail {

enum class LeafKind { mailbox, file, command, remote, error };
std::string_view leaf_kind_name(LeafKind kind);  // "mailbox", "file", "command", "remote", "error"
std::optional<LeafKind> leaf_kind_from_name(std::string_view name);

// Where a target was named. Written in a leaf as one token without spaces:
//   -                                  the recipient itself
//   aliases:PATH:LINE                  the aliases file (its database)
//   include:PATH:LINE                  an :include: file
//   forward:USER:PATH:LINE             USER's .forward
// PATH with '%', ':' or bytes outside 0x21-0x7e written as %XX.
struct Provenance {
    enum class Kind { recipient, aliases, include, forward };
    Kind kind = Kind::recipient;
    std::string path;
    unsigned line = 0;
    std::string user;  // forward: the account whose .forward it is

    std::string token() const;
    static std::optional<Provenance> parse(std::string_view token);
    // For people: "/etc/aliases:12", ":include:/etc/list:3", "~bob/.forward:1" (given
    // bob's home), "the recipient".
    std::string shown(std::string_view home = {}) const;
};

struct Leaf {
    LeafKind kind = LeafKind::mailbox;
    // The address this target was reached through: Delivered-To, the command's
    // RECIPIENT, the log's to=.
    std::string address;
    // mailbox: the account; file: the path; command: the command; remote: the
    // address; error: "5.x.y text".
    std::string target;
    Provenance provenance;
    std::string owner;  // where this leaf's bounces go (owner-NAME@host), "" = the sender

    // An error leaf's "5.x.y text" as the Status it bounces (or defers, for 4.x.y) with.
    Status error_status() const;
};

}  // namespace mailroom::mail
