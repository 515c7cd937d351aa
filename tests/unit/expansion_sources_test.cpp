// The expander's real sources: the compiled database and :include: files (SPEC 5).
#include "delivery/expansion_sources.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "support/test_support.hpp"

using namespace mailroom;
using namespace mailroom::mail;
using mailroom::test::spit;
using mailroom::test::TempDir;

namespace {

class NoAccounts final : public core::UserDb {
public:
    core::Result<std::optional<core::UserInfo>> find(std::string_view) const override { return std::optional<core::UserInfo>(); }
    core::Result<std::optional<core::UserInfo>> find_uid(uid_t) const override { return std::optional<core::UserInfo>(); }
};

}  // namespace

TEST_CASE("An :include: file is read with its owner and lines, one others may write, a link or a FIFO is refused",
          "[expansion_sources]") {
    TempDir tmp;
    ::chmod(tmp.path.c_str(), 0755);
    std::string list = tmp.path + "/list";
    spit(list, "# members\nbob, carol\n\n  dave\n");
    ::chmod(list.c_str(), 0644);
    auto used = read_include_file(list, nullptr);
    REQUIRE(used.kind == IncludedFile::Kind::used);
    CHECK(used.owner == ::geteuid());
    REQUIRE(used.lines.size() == 2);
    CHECK(used.lines[0].number == 2);
    CHECK(used.lines[1].number == 4);

    ::chmod(list.c_str(), 0664);
    auto group = read_include_file(list, nullptr);
    CHECK(group.kind == IncludedFile::Kind::refused);
    CHECK(group.reason == "writable by its group");
    ::chmod(list.c_str(), 0646);
    CHECK(read_include_file(list, nullptr).reason == "writable by anyone");
    ::chmod(list.c_str(), 0644);

    std::string link = tmp.path + "/link";
    REQUIRE(::symlink(list.c_str(), link.c_str()) == 0);
    CHECK(read_include_file(link, nullptr).reason == "a symbolic link");
    std::string fifo = tmp.path + "/fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
    CHECK(read_include_file(fifo, nullptr).reason == "a FIFO");
    CHECK(read_include_file(tmp.path + "/none", nullptr).reason == "no such file");
    CHECK(read_include_file("relative", nullptr).kind == IncludedFile::Kind::refused);

    ::chmod(tmp.path.c_str(), 0777);
    CHECK_THAT(read_include_file(list, nullptr).reason, Catch::StartsWith("in a world-writable folder"));
    ::chmod(tmp.path.c_str(), 0755);

    auto users = std::make_shared<NoAccounts>();
    SystemExpansionSources sources(tmp.path + "/aliases", users, {});
    CHECK(*sources.include_owner(list) == ::geteuid());
    ::chmod(list.c_str(), 0664);
    auto writable = sources.include_owner(list);
    REQUIRE_FALSE(writable);
    CHECK(writable.error().message() == "is writable by its group");
    CHECK(sources.include_owner(link).error().message() == "is a symbolic link");
}

TEST_CASE("Aliases come from the compiled database with their file:line, without one there are no aliases",
          "[expansion_sources]") {
    TempDir tmp;
    auto users = std::make_shared<NoAccounts>();
    std::string aliases = tmp.path + "/aliases";
    SystemExpansionSources none(aliases, users, {});
    auto missing = none.alias("team");
    REQUIRE(missing);
    CHECK_FALSE(*missing);

    spit(aliases, "# lists\nteam: bob,\n  carol\n");
    auto file = read_aliases_file(aliases);
    REQUIRE(file);
    REQUIRE(compile_alias_db(*file, alias_db_path(aliases)));
    SystemExpansionSources sources(aliases, users, {});
    auto team = sources.alias("TEAM");
    REQUIRE(team);
    REQUIRE(*team);
    CHECK((*team)->path == aliases);
    CHECK((*team)->line == 2);
    REQUIRE((*team)->targets.size() == 2);
    CHECK((*team)->targets[1].at.line == 3);
    CHECK(*sources.aliases_owner() == ::geteuid());
    // A database others may write names no one to run anything as.
    ::chmod(alias_db_path(aliases).c_str(), 0664);
    auto writable = sources.aliases_owner();
    REQUIRE_FALSE(writable);
    CHECK(writable.error().message() == "is writable by its group");
    ::chmod(alias_db_path(aliases).c_str(), 0644);
    // The compiler adds postmaster when the file has none.
    auto postmaster = sources.alias("postmaster");
    REQUIRE(postmaster);
    CHECK(*postmaster);

    // A database that is there but cannot be read defers, never "no such alias".
    spit(alias_db_path(aliases), "not a cdb at all");
    SystemExpansionSources broken(aliases, users, {});
    auto bad = broken.alias("team");
    CHECK_FALSE(bad);
}
