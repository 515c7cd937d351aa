// Expander: aliases, :include: and .forward into leaves (SPEC section 5).
#include "delivery/expander.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <string>

using namespace mailroom;
using namespace mailroom::mail;

namespace {

class FakeSources final : public ExpansionSources {
public:
    std::map<std::string, std::pair<unsigned, std::string>> aliases;  // name -> (line, right-hand side)
    std::map<std::string, core::UserInfo> users;
    std::map<std::string, ForwardResult> forwards;  // by user name
    std::map<std::string, IncludedFile> includes;   // by path
    bool aliases_broken = false;
    mutable std::vector<std::string> forwards_read;

    void user(const std::string& name, uid_t uid) { users[name] = core::UserInfo{name, uid, uid, "/home/" + name, "/bin/sh", ""}; }
    void forward(const std::string& name, std::vector<std::string> lines) {
        ForwardResult r;
        r.kind = ForwardResult::Kind::used;
        r.path = "/home/" + name + "/.forward";
        r.shown_path = "~" + name + "/.forward";
        unsigned n = 0;
        for (auto& text : lines) r.lines.push_back(ForwardLine{++n, std::move(text)});
        forwards[name] = r;
    }

    core::Result<std::optional<AliasFound>> alias(std::string_view name) const override {
        if (aliases_broken) return core::unexpected_errno("read /etc/aliases.cdb", EIO);
        auto it = aliases.find(std::string(name));
        if (it == aliases.end()) return std::optional<AliasFound>();
        auto parsed = parse_targets(it->second.second, TargetSource::aliases, {it->second.first, 1});
        REQUIRE(parsed.ok());
        return std::optional<AliasFound>(AliasFound{"/etc/aliases", it->second.first, parsed.targets});
    }
    core::Result<std::optional<core::UserInfo>> user(std::string_view name) const override {
        auto it = users.find(std::string(name));
        if (it == users.end()) return std::optional<core::UserInfo>();
        return std::optional<core::UserInfo>(it->second);
    }
    ForwardResult forward(const core::UserInfo& account, std::string_view) const override {
        forwards_read.push_back(account.name);
        auto it = forwards.find(account.name);
        return it == forwards.end() ? ForwardResult{} : it->second;
    }
    IncludedFile include(const std::string& path, const core::UserInfo*) const override {
        auto it = includes.find(path);
        if (it == includes.end()) return IncludedFile{IncludedFile::Kind::refused, path, 0, {}, "no such file"};
        return it->second;
    }
};

struct Fixture {
    FakeSources sources;
    ExpansionSettings settings;
    DeliveryRights rights = DeliveryRights::root();

    Fixture() {
        settings.routing.myhostname = "host.example";
        settings.routing.mydestination = {"host.example", "localhost"};
        for (const char* name : {"root", "bob", "carol", "dave", "erin"}) sources.user(name, 1000 + sources.users.size());
    }
    Expansion expand(const std::string& address) { return expand_recipient(address, settings, sources, rights); }
};

std::vector<std::string> described(const Expansion& e) {
    std::vector<std::string> out;
    for (const auto& leaf : e.leaves) out.push_back(std::string(leaf_kind_name(leaf.kind)) + " " + leaf.target);
    return out;
}

bool tree_mentions(const TraceStep& step, const std::string& text) {
    if (step.text.find(text) != std::string::npos) return true;
    for (const auto& child : step.children) {
        if (tree_mentions(child, text)) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("An alias to ten users gives ten mailbox leaves, each naming its aliases line", "[expander]") {
    Fixture f;
    std::string members;
    for (int i = 0; i < 10; ++i) {
        f.sources.user("u" + std::to_string(i), 2000 + i);
        members += (i ? ", u" : "u") + std::to_string(i);
    }
    f.sources.aliases["team"] = {12, members};
    auto e = f.expand("team@host.example");
    REQUIRE_FALSE(e.temporary);
    REQUIRE(e.leaves.size() == 10);
    for (int i = 0; i < 10; ++i) {
        CHECK(e.leaves[i].kind == LeafKind::mailbox);
        CHECK(e.leaves[i].target == "u" + std::to_string(i));
        CHECK(e.leaves[i].address == "u" + std::to_string(i) + "@host.example");
        CHECK(e.leaves[i].provenance.token() == "aliases:/etc/aliases:12");
    }
    CHECK(tree_mentions(e.tree, "alias team (/etc/aliases:12)"));
}

TEST_CASE("Nested aliases three deep end in the users' mailboxes, a plain user is its own mailbox", "[expander]") {
    Fixture f;
    f.sources.aliases["all"] = {1, "staff, erin"};
    f.sources.aliases["staff"] = {2, "devs, dave"};
    f.sources.aliases["devs"] = {3, "bob, carol"};
    auto e = f.expand("all");
    CHECK(described(e) == std::vector<std::string>{"mailbox bob", "mailbox carol", "mailbox dave", "mailbox erin"});
    auto plain = f.expand("bob@host.example");
    CHECK(described(plain) == std::vector<std::string>{"mailbox bob"});
    CHECK(plain.leaves[0].provenance.kind == Provenance::Kind::recipient);
}

TEST_CASE("A loop bounces 5.4.6 naming the chain, and other members still get the mail", "[expander]") {
    Fixture f;
    f.sources.aliases["a"] = {1, "b, carol"};
    f.sources.aliases["b"] = {2, "a"};
    auto e = f.expand("a");
    REQUIRE(e.leaves.size() == 2);
    CHECK(e.leaves[0].kind == LeafKind::error);
    CHECK(e.leaves[0].target == "5.4.6 mail forwarding loop: a -> b -> a");
    CHECK(described(e)[1] == "mailbox carol");
}

TEST_CASE("Expansion deeper than the cap bounces 5.4.6", "[expander]") {
    Fixture f;
    for (int i = 0; i < 12; ++i) f.sources.aliases["l" + std::to_string(i)] = {1u + i, "l" + std::to_string(i + 1)};
    f.sources.aliases["l12"] = {13, "bob"};
    auto e = f.expand("l0");
    REQUIRE(e.leaves.size() == 1);
    CHECK(e.leaves[0].kind == LeafKind::error);
    CHECK_THAT(e.leaves[0].target, Catch::StartsWith("5.4.6 alias expansion deeper than 10 levels"));
}

TEST_CASE("A target reached twice is delivered once", "[expander]") {
    Fixture f;
    f.sources.aliases["x"] = {1, "bob, y, BOB@host.example"};
    f.sources.aliases["y"] = {2, "bob, carol"};
    auto e = f.expand("x");
    CHECK(described(e) == std::vector<std::string>{"mailbox bob", "mailbox carol"});
    CHECK(tree_mentions(e.tree, "already a target"));
}

TEST_CASE("An alias that names itself delivers to the user's own mailbox, without its .forward", "[expander]") {
    Fixture f;
    f.sources.aliases["bob"] = {4, "bob, carol"};
    f.sources.forward("bob", {"|/usr/bin/vacation bob"});
    auto e = f.expand("bob");
    CHECK(described(e) == std::vector<std::string>{"mailbox bob", "mailbox carol"});
    CHECK(std::find(f.sources.forwards_read.begin(), f.sources.forwards_read.end(), "bob") ==
          f.sources.forwards_read.end());
}

TEST_CASE("owner-NAME receives the bounces of list NAME", "[expander]") {
    Fixture f;
    f.sources.aliases["list"] = {1, "bob, carol"};
    f.sources.aliases["owner-list"] = {2, "dave"};
    auto e = f.expand("list");
    REQUIRE(e.leaves.size() == 2);
    CHECK(e.leaves[0].owner == "owner-list@host.example");
    CHECK(e.leaves[1].owner == "owner-list@host.example");
    CHECK(f.expand("bob").leaves[0].owner.empty());
}

TEST_CASE("error:, \\user, :include: and user+ext expand as aliases(5) says", "[expander]") {
    Fixture f;
    f.sources.aliases["gone"] = {1, "error:5.1.6 moved to elsewhere"};
    f.sources.aliases["lst"] = {2, ":include:/etc/mail/lst.inc"};
    f.sources.aliases["bob+news"] = {3, "carol"};
    IncludedFile inc{IncludedFile::Kind::used, "/etc/mail/lst.inc", 0, {{1, "dave"}, {3, "erin, bob"}}, ""};
    f.sources.includes["/etc/mail/lst.inc"] = inc;
    f.sources.forward("carol", {"\\carol, dave"});

    auto gone = f.expand("gone");
    REQUIRE(gone.leaves.size() == 1);
    CHECK(gone.leaves[0].kind == LeafKind::error);
    CHECK(gone.leaves[0].target == "5.1.6 moved to elsewhere");

    auto lst = f.expand("lst");
    CHECK(described(lst) == std::vector<std::string>{"mailbox dave", "mailbox erin", "mailbox bob"});
    CHECK(lst.leaves[1].provenance.token() == "include:/etc/mail/lst.inc:3");

    // user+ext: the alias for the full name is tried first
    auto news = f.expand("bob+news@host.example");
    CHECK(described(news) == std::vector<std::string>{"mailbox carol", "mailbox dave"});
    // bob+other has no alias: bob's mailbox, the address keeping its extension
    auto other = f.expand("bob+other@host.example");
    CHECK(described(other) == std::vector<std::string>{"mailbox bob"});
    CHECK(other.leaves[0].address == "bob+other@host.example");
}

TEST_CASE("A .forward sends the user's mail on, \\user and the user's own name in it mean the mailbox", "[expander]") {
    Fixture f;
    f.sources.forward("bob", {"bob, |/usr/bin/procmail -a x", "carol@elsewhere.example"});
    auto e = f.expand("bob");
    CHECK(described(e) == std::vector<std::string>{"mailbox bob", "command /usr/bin/procmail -a x",
                                                   "remote carol@elsewhere.example"});
    CHECK(e.leaves[1].provenance.token() == "forward:bob:/home/bob/.forward:1");
    CHECK(e.leaves[1].provenance.shown("/home/bob") == "~bob/.forward:1");
    CHECK(e.leaves[1].address == "bob@host.example");
    CHECK(e.leaves[2].provenance.line == 2);
}

TEST_CASE("A refused .forward is logged in the trace and the user's mailbox is used", "[expander]") {
    Fixture f;
    ForwardResult refused;
    refused.kind = ForwardResult::Kind::refused;
    refused.path = "/home/bob/.forward";
    refused.shown_path = "~bob/.forward";
    refused.reason = "group-writable";
    f.sources.forwards["bob"] = refused;
    auto e = f.expand("bob");
    CHECK(described(e) == std::vector<std::string>{"mailbox bob"});
    CHECK(tree_mentions(e.tree, "group-writable"));
    CHECK(e.warnings == std::vector<std::string>{"~bob/.forward ignored: group-writable"});  // for the log

    f.sources.forward("carol", {"dave", "|cmd \"unterminated"});
    auto bad = f.expand("carol");
    CHECK(described(bad) == std::vector<std::string>{"mailbox carol"});
    CHECK(tree_mentions(bad.tree, "~carol/.forward ignored: line 2"));
}

TEST_CASE("Commands and files are allowed only where allow_mail_to_commands and allow_mail_to_files say",
          "[expander]") {
    Fixture f;
    f.sources.aliases["pipe"] = {1, "|/bin/cat, /var/log/mail.copy"};
    f.sources.aliases["lst"] = {2, ":include:/etc/l"};
    f.sources.includes["/etc/l"] = IncludedFile{IncludedFile::Kind::used, "/etc/l", 1001, {{1, "|/bin/cat"}}, ""};
    CHECK(described(f.expand("pipe")) == std::vector<std::string>{"command /bin/cat", "file /var/log/mail.copy"});
    auto inc = f.expand("lst");  // include is not in the default lists
    REQUIRE(inc.leaves.size() == 1);
    CHECK(inc.leaves[0].kind == LeafKind::error);
    CHECK_THAT(inc.leaves[0].target, Catch::StartsWith("5.7.1 mail to commands is not allowed in include"));

    f.settings.commands_allowed = {"forward"};
    f.settings.files_allowed = {};
    auto none = f.expand("pipe");
    CHECK(none.leaves[0].kind == LeafKind::error);
    CHECK(none.leaves[1].kind == LeafKind::error);
    CHECK_THAT(none.leaves[1].target, Catch::Contains("allow_mail_to_files"));
}

TEST_CASE("An address from outside is always an address: never a command, file or include", "[expander]") {
    Fixture f;
    for (const char* outside : {"\"|touch /tmp/x\"@localhost", "/etc/passwd@localhost", "\":include:/etc/l\"@localhost",
                                "\"\\\\bob\"@host.example", "\"/tmp/f\"@host.example"}) {
        auto e = f.expand(outside);
        INFO(outside);
        REQUIRE(e.leaves.size() == 1);
        CHECK((e.leaves[0].kind == LeafKind::error || e.leaves[0].kind == LeafKind::mailbox));
        for (const auto& leaf : e.leaves) {
            CHECK(leaf.kind != LeafKind::command);
            CHECK(leaf.kind != LeafKind::file);
        }
    }
}

TEST_CASE("A lookup that fails for now defers the whole recipient and records nothing", "[expander]") {
    Fixture f;
    f.sources.aliases_broken = true;
    auto e = f.expand("bob");
    REQUIRE(e.temporary);
    CHECK(e.temporary->is_temporary());
    CHECK(e.leaves.empty());

    Fixture g;
    ForwardResult sick;
    sick.kind = ForwardResult::Kind::temporary;
    sick.path = "/home/bob/.forward";
    sick.shown_path = "~bob/.forward";
    sick.reason = "Stale file handle";
    g.sources.forwards["bob"] = sick;
    g.sources.aliases["two"] = {1, "carol, bob"};
    auto two = g.expand("two");
    REQUIRE(two.temporary);
    CHECK(two.leaves.empty());
}

TEST_CASE("A runner that may not act as a user leaves that user's expansion for one that may", "[expander]") {
    Fixture f;
    f.rights = DeliveryRights::only_as(f.sources.users["carol"].uid);
    auto e = f.expand("bob");
    REQUIRE(e.temporary);
    CHECK(e.needs_more_rights);
    CHECK(f.sources.forwards_read.empty());  // bob's .forward was not even looked at
    CHECK_FALSE(f.expand("carol").temporary);
}

TEST_CASE("postmaster always resolves: to root's mailbox when there is no alias and no account", "[expander]") {
    Fixture f;
    CHECK(described(f.expand("postmaster")) == std::vector<std::string>{"mailbox root"});
    CHECK(described(f.expand("PostMaster@host.example")) == std::vector<std::string>{"mailbox root"});
    auto unknown = f.expand("nobody-at-all");
    REQUIRE(unknown.leaves.size() == 1);
    CHECK(unknown.leaves[0].target == "5.1.1 unknown user: \"nobody-at-all\"");
}

TEST_CASE("A provenance token reads back as written, whatever the path holds", "[expander]") {
    for (Provenance p : {Provenance{}, Provenance{Provenance::Kind::aliases, "/etc/aliases", 12, ""},
                         Provenance{Provenance::Kind::include, "/etc/a b:c%d\t", 3, ""},
                         Provenance{Provenance::Kind::forward, "/home/bob/.forward+x", 1, "bob"}}) {
        auto token = p.token();
        CHECK(token.find(' ') == std::string::npos);
        auto back = Provenance::parse(token);
        REQUIRE(back);
        CHECK(back->kind == p.kind);
        CHECK(back->path == p.path);
        CHECK(back->line == p.line);
        CHECK(back->user == p.user);
    }
    for (const char* bad : {"", "aliases", "aliases:/x", "aliases:x:1", "include:/x:y", "forward:/x:1",
                            "forward:../b:/x:1", "other:/x:1", "aliases:/x%2:1", "aliases:/x:1:2"}) {
        INFO(bad);
        CHECK_FALSE(Provenance::parse(bad));
    }
}
