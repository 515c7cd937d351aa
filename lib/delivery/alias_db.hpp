// AliasDb: the compiled aliases database `$aliases.cdb` (tinycdb's constant database),
// its compiler, and the freshness check that compares it with the text
// (docs/aliases.md).
//
// Record: key = the alias name in lowercase; value = a self-describing text record
//   "mailroom-alias 1\n" LINE " " COLUMN "\n" RIGHT-HAND-SIDE
// (LINE and COLUMN in decimal, where the right-hand side starts in the source; the
// right-hand side as aliases_file keeps it, '\n' between continuation lines), so a
// lookup re-parses the targets with their own file:line provenance. A name added
// by the compiler (postmaster: root) has line 0.
//
// Invariants: the database is replaced atomically (a temp file beside it, fsync,
// rename, fsync of the folder: core::TempFile), mode 0644, so a reader sees the old
// database or the new, whole. A lookup distinguishes "no such alias" (a value)
// from "cannot read the database" (an error: the caller defers, never bounces).
// Must never: leave a temp file behind, or replace the old database with a
// partial one.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "delivery/aliases_file.hpp"
#include "delivery/target_syntax.hpp"

struct cdb;

namespace mailroom::mail {

// "$aliases.cdb".
std::string alias_db_path(const std::string& source_path);

// What newaliases prints: "N aliases, longest L bytes, T bytes total" — N records
// (the added postmaster included), L the longest right-hand side, T the sum of the
// names and right-hand sides, in bytes.
struct AliasDbStats {
    std::size_t aliases = 0;
    std::size_t longest = 0;
    std::size_t total = 0;
    bool postmaster_added = false;
};

// Writes the entries (plus `postmaster: root` when file.needs_postmaster()) into
// db_path atomically. On error the old database is untouched.
core::Result<AliasDbStats> compile_alias_db(const AliasesFile& file, const std::string& db_path);

// The value record of one entry, and its reading back (exposed for tests and the fuzzer).
std::string encode_alias_record(const AliasEntry& entry);
core::Result<AliasEntry> decode_alias_record(std::string_view name, std::string_view record);

// One alias found: its targets, each with its position in the source file.
struct AliasRecord {
    std::string name;         // lowercase
    std::string source_path;  // the aliases text file the database was compiled from
    unsigned line = 0;        // of the name; 0 = added by newaliases (postmaster)
    std::vector<ParsedTarget> targets;
    // "/etc/aliases:12" (the FILE:LINE of `mailctl trace`); "/etc/aliases.cdb (added
    // by newaliases)" for line 0.
    std::string provenance() const;
};

class AliasDb {
public:
    // Opens and maps db_path; source_path names the text file for provenance. An
    // error (ENOENT included) is an errno error: the caller decides whether a
    // missing database means "no aliases" or "defer".
    static core::Result<AliasDb> open(const std::string& db_path, std::string source_path);

    AliasDb(AliasDb&&) noexcept;
    AliasDb& operator=(AliasDb&&) noexcept;
    ~AliasDb();

    // Case-insensitive. nullopt: no such alias. Error: the database could not be
    // read or holds a record that does not decode (corrupt): defer the delivery.
    core::Result<std::optional<AliasRecord>> lookup(std::string_view name) const;

    // The database file's owner (fstat of the open file): commands and files named
    // by a root-owned database run as default_privs (docs/aliases.md).
    uid_t owner_uid() const { return owner_; }
    const std::string& path() const { return path_; }
    const std::string& source_path() const { return source_; }

private:
    struct Mapping;
    AliasDb(std::unique_ptr<Mapping> mapping, std::string path, std::string source, uid_t owner);

    std::unique_ptr<Mapping> mapping_;
    std::string path_;
    std::string source_;
    uid_t owner_ = 0;
};

// Whether `$aliases.cdb` is older than `$aliases` (modification times), or missing.
struct AliasDbFreshness {
    enum class State {
        fresh,           // the database is as new as the text or newer
        db_missing,      // the text exists, the database does not: newaliases never ran
        db_older,        // the text changed after the last newaliases
        source_missing,  // there is no text (a database alone is used as it is)
        cannot_check,    // stat failed otherwise (error_number says why)
    };
    State state = State::fresh;
    int error_number = 0;
    std::string source_path, db_path;

    // Postfix's words for the runner's log line, empty when fresh or no text:
    // "database /etc/aliases.cdb is older than source file /etc/aliases".
    std::string warning() const;
};
AliasDbFreshness check_alias_db_freshness(const std::string& source_path);

}  // namespace mailroom::mail
