// run_as: who a leaf runs as, from its provenance (SPEC 5).
#include "delivery/run_as.hpp"

#include <catch2/catch.hpp>
#include <map>

using namespace mailroom;
using namespace mailroom::mail;

namespace {

class Accounts final : public core::UserDb {
public:
    std::map<std::string, core::UserInfo> by_name;
    void add(const std::string& name, uid_t uid) { by_name[name] = core::UserInfo{name, uid, uid, "/home/" + name, "/bin/sh", ""}; }
    core::Result<std::optional<core::UserInfo>> find(std::string_view name) const override {
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

class Facts final : public RunAsFacts {
public:
    uid_t aliases = 0;
    std::map<std::string, core::Result<uid_t>> includes;
    core::Result<uid_t> aliases_owner() const override { return aliases; }
    core::Result<uid_t> include_owner(const std::string& path) const override {
        auto it = includes.find(path);
        if (it == includes.end()) return core::unexpected_errno("stat " + path, ENOENT);
        return it->second;
    }
};

Leaf command_from(Provenance p) { return Leaf{LeafKind::command, "list@host", "/bin/cat", std::move(p), ""}; }

}  // namespace

TEST_CASE("A command from a root-owned aliases database runs as default_privs, from a user's as that user",
          "[run_as]") {
    Accounts users;
    users.add("root", 0);
    users.add("nobody", 65534);
    users.add("list", 1500);
    Facts facts;
    RunAsSettings settings;
    Leaf leaf = command_from({Provenance::Kind::aliases, "/etc/aliases", 3, ""});
    auto as = run_as(leaf, users, facts, settings);
    REQUIRE(as.user);
    CHECK(as.user->name == "nobody");
    facts.aliases = 1500;
    CHECK(run_as(leaf, users, facts, settings).user->name == "list");
    settings.default_privs = "root";  // a default_privs of root is refused, never used
    facts.aliases = 0;
    auto root = run_as(leaf, users, facts, settings);
    CHECK_FALSE(root.user);
    CHECK(root.refused.code() == "5.7.1");
}

TEST_CASE("A command from an :include: file runs as its owner, one others may write is refused", "[run_as]") {
    Accounts users;
    users.add("nobody", 65534);
    users.add("mailman", 1600);
    Facts facts;
    facts.includes.emplace("/etc/l", uid_t(1600));
    facts.includes.emplace("/etc/root-l", uid_t(0));
    facts.includes.emplace("/tmp/open", core::Result<uid_t>(core::unexpected_input("is writable by others")));
    Leaf leaf = command_from({Provenance::Kind::include, "/etc/l", 1, ""});
    CHECK(run_as(leaf, users, facts, {}).user->name == "mailman");
    leaf.provenance.path = "/etc/root-l";
    CHECK(run_as(leaf, users, facts, {}).user->name == "nobody");
    leaf.provenance.path = "/tmp/open";
    auto open = run_as(leaf, users, facts, {});
    CHECK_FALSE(open.user);
    CHECK(open.refused.code() == "5.7.1");
    leaf.provenance.path = "/gone";
    CHECK(run_as(leaf, users, facts, {}).refused.is_temporary());
}

TEST_CASE("A command from a .forward runs as its user, from root's as default_privs, and never as root", "[run_as]") {
    Accounts users;
    users.add("bob", 1001);
    users.add("root", 0);
    users.add("nobody", 65534);
    Facts facts;
    CHECK(run_as(command_from({Provenance::Kind::forward, "/home/bob/.forward", 1, "bob"}), users, facts, {}).user->uid == 1001);
    Leaf roots = command_from({Provenance::Kind::forward, "/root/.forward", 1, "root"});
    CHECK(run_as(roots, users, facts, {}).user->name == "nobody");
    auto root = run_as(roots, users, facts, RunAsSettings{"root"});
    CHECK_FALSE(root.user);
    CHECK_THAT(root.refused.text(), Catch::Contains("would run as root"));
    // Nothing but aliases, :include: and .forward names a command.
    CHECK(run_as(command_from(Provenance{}), users, facts, {}).refused.code() == "5.7.1");
}

TEST_CASE("A mailbox leaf runs as the account it names, root's mailbox included", "[run_as]") {
    Accounts users;
    users.add("root", 0);
    Facts facts;
    CHECK(run_as(Leaf{LeafKind::mailbox, "root@h", "root", {}, ""}, users, facts, {}).user->uid == 0);
    CHECK(run_as(Leaf{LeafKind::mailbox, "x@h", "x", {}, ""}, users, facts, {}).refused.code() == "5.1.1");
}
