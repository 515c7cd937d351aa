// The compiled aliases database: atomic replacement, mode, records with provenance,
// lookups (found / not found / cannot read), owner, freshness.
#include "delivery/alias_db.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "support/test_support.hpp"

using mailroom::mail::alias_db_path;
using mailroom::mail::AliasDb;
using mailroom::mail::AliasDbFreshness;
using mailroom::mail::AliasEntry;
using mailroom::mail::AliasesFile;
using mailroom::mail::check_alias_db_freshness;
using mailroom::mail::compile_alias_db;
using mailroom::mail::decode_alias_record;
using mailroom::mail::encode_alias_record;
using mailroom::mail::parse_aliases;
using mailroom::mail::TargetKind;
using mailroom::test::TempDir;

namespace {

AliasesFile parsed(std::string_view text, const std::string& name) {
    auto f = parse_aliases(text, name);
    REQUIRE(f.has_value());
    return std::move(f).value();
}

std::size_t files_in(const std::string& dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
    return n;
}

}  // namespace

TEST_CASE("alias db: a compiled database answers lookups with the targets and their file:line",
          "[alias_db]") {
    TempDir tmp;
    std::string source = tmp.path + "/aliases";
    auto file = parsed("postmaster: root\nTeam: bob,\n  \"|/bin/cat, -\", /var/log/x\n", source);
    auto stats = compile_alias_db(file, alias_db_path(source));
    REQUIRE(stats.has_value());
    CHECK(stats->aliases == 2);
    CHECK_FALSE(stats->postmaster_added);

    auto db = AliasDb::open(alias_db_path(source), source);
    REQUIRE(db.has_value());
    auto team = db->lookup("TEAM");
    REQUIRE(team.has_value());
    REQUIRE(team->has_value());
    const auto& r = **team;
    CHECK(r.name == "team");
    CHECK(r.line == 2);
    CHECK(r.provenance() == source + ":2");
    REQUIRE(r.targets.size() == 3);
    CHECK(r.targets[0].value == "bob");
    CHECK(r.targets[1].kind == TargetKind::command);
    CHECK(r.targets[1].value == "/bin/cat, -");
    CHECK(r.targets[1].at.line == 3);
    CHECK(r.targets[1].at.column == 3);
    CHECK(r.targets[2].kind == TargetKind::file);

    auto none = db->lookup("nobody-here");
    REQUIRE(none.has_value());
    CHECK_FALSE(none->has_value());
    CHECK(db->owner_uid() == ::geteuid());
}

TEST_CASE("alias db: the summary counts aliases, the longest right-hand side and the total bytes", "[alias_db]") {
    TempDir tmp;
    auto file = parsed("ab: cdef\npostmaster: root, x\n", "aliases");
    auto stats = compile_alias_db(file, tmp.path + "/a.cdb");
    REQUIRE(stats.has_value());
    CHECK(stats->aliases == 2);
    CHECK(stats->longest == 7);                    // "root, x"
    CHECK(stats->total == 2 + 4 + 10 + 7);         // names and right-hand sides
}

TEST_CASE("alias db: postmaster always resolves: root is added when the file has none", "[alias_db]") {
    TempDir tmp;
    std::string source = tmp.path + "/aliases";
    auto stats = compile_alias_db(parsed("bob: alice\n", source), alias_db_path(source));
    REQUIRE(stats.has_value());
    CHECK(stats->postmaster_added);
    CHECK(stats->aliases == 2);
    auto db = AliasDb::open(alias_db_path(source), source);
    REQUIRE(db.has_value());
    auto pm = db->lookup("Postmaster");
    REQUIRE(pm.has_value());
    REQUIRE(pm->has_value());
    CHECK((*pm)->line == 0);
    CHECK((*pm)->provenance() == alias_db_path(source) + " (added by newaliases)");
    REQUIRE((*pm)->targets.size() == 1);
    CHECK((*pm)->targets[0].value == "root");
}

TEST_CASE("alias db: the database is replaced atomically, mode 0644, no temp file left", "[alias_db]") {
    TempDir tmp;
    std::string db_path = tmp.path + "/aliases.cdb";
    REQUIRE(compile_alias_db(parsed("a: one\n", "aliases"), db_path).has_value());
    auto old_db = AliasDb::open(db_path, "aliases");  // a reader holding the old one open
    REQUIRE(old_db.has_value());
    ::umask(077);
    REQUIRE(compile_alias_db(parsed("a: two\n", "aliases"), db_path).has_value());
    ::umask(022);
    struct stat st {};
    REQUIRE(::stat(db_path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0644);
    CHECK(files_in(tmp.path) == 1);
    // The old reader still sees the old whole database; a new one sees the new.
    CHECK((*old_db->lookup("a"))->targets[0].value == "one");
    CHECK((*AliasDb::open(db_path, "aliases")->lookup("a"))->targets[0].value == "two");
}

TEST_CASE("alias db: a database that cannot be written leaves the old one and no temp file", "[alias_db]") {
    TempDir tmp;
    // The rename fails (a folder is in the way) after the temp file was written.
    std::string in_the_way = tmp.path + "/aliases.cdb";
    REQUIRE(::mkdir(in_the_way.c_str(), 0755) == 0);
    tmp.write("aliases.cdb/keep", "x");
    auto r = compile_alias_db(parsed("a: b\n", "aliases"), in_the_way);
    REQUIRE_FALSE(r.has_value());
    CHECK(files_in(tmp.path) == 1);
    CHECK(mailroom::test::slurp(in_the_way + "/keep") == "x");

    auto missing_dir = compile_alias_db(parsed("a: b\n", "aliases"), tmp.path + "/none/aliases.cdb");
    REQUIRE_FALSE(missing_dir.has_value());
    CHECK(missing_dir.error().errno_value() == ENOENT);
}

TEST_CASE("alias db: an unreadable or corrupt database is an error (defer), never 'not found'", "[alias_db]") {
    TempDir tmp;
    auto missing = AliasDb::open(tmp.path + "/none.cdb", "none");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().errno_value() == ENOENT);

    std::string garbage = tmp.write("garbage.cdb", "not a cdb");
    auto bad = AliasDb::open(garbage, "garbage");
    CHECK_FALSE(bad.has_value());

    // A valid cdb whose record is not ours: the lookup fails instead of saying "no alias".
    std::string db_path = tmp.path + "/a.cdb";
    REQUIRE(compile_alias_db(parsed("a: b\n", "aliases"), db_path).has_value());
    std::string bytes = mailroom::test::slurp(db_path);
    auto at = bytes.find("mailroom-alias 1");
    REQUIRE(at != std::string::npos);
    bytes[at] = 'X';
    mailroom::test::spit(db_path, bytes);
    auto db = AliasDb::open(db_path, "aliases");
    REQUIRE(db.has_value());
    auto r = db->lookup("a");
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().message(), Catch::Contains("corrupt record for alias 'a'"));
}

TEST_CASE("alias db: records encode line, column and text, and decode to the same targets", "[alias_db]") {
    AliasEntry e{"x", "a,\n  |cmd", {12, 4}, {}};
    std::string record = encode_alias_record(e);
    CHECK(record == "mailroom-alias 1\n12 4\na,\n  |cmd");
    auto back = decode_alias_record("x", record);
    REQUIRE(back.has_value());
    CHECK(back->at.line == 12);
    REQUIRE(back->targets.size() == 2);
    CHECK(back->targets[1].at.line == 13);
    CHECK_FALSE(decode_alias_record("x", "mailroom-alias 1\n12\nbob").has_value());
    CHECK_FALSE(decode_alias_record("x", "mailroom-alias 1\n1 1\nb@@").has_value());
}

TEST_CASE("alias db: freshness says missing, older than the source file, or fresh", "[alias_db]") {
    TempDir tmp;
    std::string source = tmp.write("aliases", "a: b\n");
    auto missing = check_alias_db_freshness(source);
    CHECK(missing.state == AliasDbFreshness::State::db_missing);
    CHECK(missing.warning() == "database " + source + ".cdb is missing: run newaliases");

    REQUIRE(compile_alias_db(parsed("a: b\n", source), alias_db_path(source)).has_value());
    mailroom::test::age(alias_db_path(source), std::chrono::seconds(60));
    auto stale = check_alias_db_freshness(source);
    CHECK(stale.state == AliasDbFreshness::State::db_older);
    CHECK(stale.warning() == "database " + source + ".cdb is older than source file " + source);

    mailroom::test::age(source, std::chrono::seconds(120));
    auto fresh = check_alias_db_freshness(source);
    CHECK(fresh.state == AliasDbFreshness::State::fresh);
    CHECK(fresh.warning().empty());
    CHECK(check_alias_db_freshness(tmp.path + "/none").state == AliasDbFreshness::State::source_missing);
}
