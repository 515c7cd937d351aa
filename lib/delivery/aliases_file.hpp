// AliasesFile: the aliases(5) text file read into entries (SPEC 5, docs/aliases.md).
// Reads text only: it compiles nothing (alias_db.hpp does) and decides no rights.
//
//   name: target, target, ...    one entry; targets as in target_syntax.hpp
//       target, ...              a line starting with white space continues it
//   # comment                    a line whose first non-blank byte is '#'; ignored,
//                                as are blank lines (neither ends an entry)
//   "odd name": target           a name may be quoted (backslash escapes inside)
//
// Names are case-insensitive and stored in lowercase (ASCII); a name holds no '@'
// (aliases are local names). A name given twice: the first entry wins, as in
// Postfix, and the later one gives a warning naming both lines. A CR before LF is
// dropped; any other CR, a NUL or a control byte is an error naming line and column.
// Every error is one line `FILE:LINE: error: WHAT`; every warning `FILE:LINE: warning: WHAT`.
// Invariants: each entry keeps the line of its name and the right-hand side text as
// written (continuation lines joined by '\n', so targets keep their own line numbers),
// and that text parses (parse_targets, TargetSource::aliases) without error.
// Must never: read past the limits below, or accept a file that has a syntax error
// anywhere (one bad line rejects the whole file, so a half-read list never replaces
// the old database).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "delivery/target_syntax.hpp"

namespace mailroom::mail {

struct AliasEntry {
    std::string name;           // lowercase
    std::string text;           // the right-hand side, trimmed; '\n' between continuation lines
    TextPosition at;            // line of the name; column where text starts
    std::vector<ParsedTarget> targets;  // empty when read with keep_targets = false
};

struct AliasesOptions {
    std::size_t max_line_bytes = 64 << 10;     // one physical line
    std::size_t max_entry_bytes = 1 << 20;     // one entry's right-hand side, continuations included
    std::size_t max_entries = 1000000;
    std::size_t max_file_bytes = 256u << 20;
    std::size_t max_name_bytes = 256;
    // false: targets are checked but not kept (entries' targets stay empty). newaliases
    // stores the text, so it saves the memory and time of 100,000 target lists.
    bool keep_targets = true;
};

struct AliasesFile {
    std::string path;                    // as given: the FILE of FILE:LINE
    std::vector<AliasEntry> entries;     // file order, duplicates dropped
    std::vector<std::string> warnings;   // "FILE:LINE: warning: ..." lines
    // No entry for postmaster: the compiled database adds `postmaster: root`
    // (RFC 5321 4.5.1: postmaster must always be deliverable).
    bool needs_postmaster() const;
};

// Parses text; name stands for the file in error and warning lines. An error is an
// input error whose message() is the whole `NAME:LINE: error: WHAT` line.
core::Result<AliasesFile> parse_aliases(std::string_view text, const std::string& name,
                                        const AliasesOptions& limits = {});
// Reads and parses path. An I/O failure is an errno error ("open /etc/aliases: ...");
// bad content an input error as above.
core::Result<AliasesFile> read_aliases_file(const std::string& path, const AliasesOptions& limits = {});

// The entries written back as aliases text (one line each, names quoted when
// needed) that parse_aliases reads as the same names and targets.
std::string render_aliases(const std::vector<AliasEntry>& entries);

// The name as it must be written on the left-hand side: bare, or quoted.
std::string render_alias_name(std::string_view name);

}  // namespace mailroom::mail
