// Target syntax: the right-hand side of an alias, a .forward line or an :include:
// file line, split into the targets it names (SPEC 5, aliases(5)), each with the
// line and column it starts at. This file only reads text: it opens nothing, looks
// nobody up and decides no rights (the expander does, from the TargetSource).
//
// Items are separated by commas and white space (from outside: by commas only, so
// that `|cmd args` is one bad address). An item is one of
//   address       bob, bob@host, "odd name"@host, <bob@host>
//   command       |cmd args          unquoted: runs to the next comma (or line end)
//                 "|cmd a, b"        quoted: everything inside the quotes
//   file          /path              unquoted: to the next comma or white space
//                 "/path with space"
//   include       :include:/path     (":include:/path with space" quoted)
//   own mailbox   \user              the user's mailbox, no further expansion
//   error         error:5.1.1 text   code 4.x.y or 5.x.y; the text runs to the next comma
// Inside quotes a backslash takes the next byte literally. Empty items (", ,") are
// ignored. A newline (the caller keeps it between continuation lines) separates
// items like white space; with TargetSource::aliases an unquoted command or error
// text runs on over it (sendmail joins continuation lines), elsewhere it ends there.
//
// Invariants: with TargetSource::outside (sendmail arguments, headers, SMTP, LMTP)
// only addresses are ever returned: `"|cmd"@host` and `/etc/passwd@host` are
// addresses, `:include:/x`, `\bob` and `error:...` are syntax errors. Every address
// target holds a parsed mail::Address. Must never: accept NUL, CR or another control
// byte (tab and the newline above excepted), return more than max_targets targets or
// an item longer than max_item_bytes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mail/address.hpp"

namespace mailroom::mail {

// Where the text came from: it decides which kinds may appear (see above).
enum class TargetSource { aliases, include, forward, outside };

enum class TargetKind { address, command, file, include, own_mailbox, error };

// "address", "command", "file", "include", "own mailbox", "error".
std::string_view target_kind_name(TargetKind kind);

struct TextPosition {
    unsigned line = 1;    // 1-based; counts the newlines in the text
    unsigned column = 1;  // 1-based byte column within that line
};

struct ParsedTarget {
    TargetKind kind = TargetKind::address;
    // address: Address::str(); command: the command without its '|';
    // file and include: the absolute path; own_mailbox: the user name without '\';
    // error: the text after the code (may be empty).
    std::string value;
    Address address;          // kind address only
    std::string status_code;  // kind error only: "5.1.1"
    TextPosition at;

    // The item written back so that parse_targets reads it again as the same target
    // (quoted when needed): `"|cmd a, b"`, `/x`, `":include:/a b"`, `\bob`, ...
    std::string render() const;
};

struct TargetSyntaxError {
    TextPosition at;
    std::string what;  // names the column: "NUL byte at column 7"
};

struct ParsedTargets {
    std::vector<ParsedTarget> targets;
    std::optional<TargetSyntaxError> error;  // set: targets is empty
    bool ok() const { return !error.has_value(); }
};

// Caps: an item (a command, a path, an address) and the number of targets in one text.
constexpr std::size_t max_item_bytes = 4096;
constexpr std::size_t max_targets = 10000;

// Splits text into targets. start is where text begins in its file (the column
// just after `name:` for an alias), so that positions are those of the file.
ParsedTargets parse_targets(std::string_view text, TargetSource source, TextPosition start = {});

// The targets written as one line that parse_targets(…, source) reads back equal.
std::string render_targets(const std::vector<ParsedTarget>& targets);

}  // namespace mailroom::mail
