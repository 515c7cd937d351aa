// mailctl trace / sendmail -bv: the expansion tree with each leaf resolved (SPEC 1, 5).
#include "delivery/trace.hpp"

#include <catch2/catch.hpp>
#include <map>

using namespace mailroom;
using namespace mailroom::mail;

namespace {

class World final : public ExpansionSources, public RunAsFacts, public core::UserDb {
public:
    std::map<std::string, std::pair<unsigned, std::string>> aliases;
    std::map<std::string, core::UserInfo> accounts;
    std::map<std::string, ForwardResult> forwards;

    World() {
        add("bob", 1001);
        add("nobody", 65534);
    }
    void add(const std::string& name, uid_t uid) { accounts[name] = core::UserInfo{name, uid, uid, "/home/" + name, "/bin/sh", ""}; }

    core::Result<std::optional<AliasFound>> alias(std::string_view name) const override {
        auto it = aliases.find(std::string(name));
        if (it == aliases.end()) return std::optional<AliasFound>();
        auto parsed = parse_targets(it->second.second, TargetSource::aliases, {it->second.first, 1});
        return std::optional<AliasFound>(AliasFound{"/etc/aliases", it->second.first, parsed.targets});
    }
    core::Result<std::optional<core::UserInfo>> user(std::string_view name) const override { return find(name); }
    ForwardResult forward(const core::UserInfo& account, std::string_view) const override {
        auto it = forwards.find(account.name);
        return it == forwards.end() ? ForwardResult{} : it->second;
    }
    IncludedFile include(const std::string& path, const core::UserInfo*) const override {
        return IncludedFile{IncludedFile::Kind::refused, path, 0, {}, "no such file"};
    }
    core::Result<uid_t> aliases_owner() const override { return uid_t(0); }
    core::Result<uid_t> include_owner(const std::string& path) const override {
        return core::unexpected_errno("lstat " + path, ENOENT);
    }
    core::Result<std::optional<core::UserInfo>> find(std::string_view name) const override {
        if (name == "broken") return core::unexpected_errno("getpwnam_r broken", EIO);
        auto it = accounts.find(std::string(name));
        return it == accounts.end() ? std::optional<core::UserInfo>() : std::optional<core::UserInfo>(it->second);
    }
    core::Result<std::optional<core::UserInfo>> find_uid(uid_t uid) const override {
        for (const auto& [name, info] : accounts) {
            if (info.uid == uid) return std::optional<core::UserInfo>(info);
        }
        return std::optional<core::UserInfo>();
    }
};

struct Fixture {
    World world;
    ExpansionSettings expansion;
    LocalDeliverySettings local;
    Fixture() {
        expansion.routing = {"host.example", {"host.example", "localhost"}, "+"};
        local.mail_spool_dir = "/var/mail";
    }
    std::string relayhost;
    Trace trace(const std::string& address) {
        TraceContext context{expansion, world, world, world, local, RunAsSettings{}, DeliveryRights::root(), relayhost};
        return trace_address(address, context);
    }
};

}  // namespace

TEST_CASE("mailctl trace shows a local user's mailbox, an unknown user, a remote and a bad address", "[trace]") {
    Fixture f;
    auto bob = f.trace("Bob+news@host.example");
    CHECK(bob.exit_code == 0);
    CHECK(bob.lines == std::vector<std::string>{"Bob+news@host.example",
                                                "  local address Bob+news@host.example: user bob, extension news",
                                                "    -> mailbox /var/mail/bob (mbox), written as bob (uid 1001)"});
    f.local.format = MailboxFormat::maildir;
    CHECK(f.trace("bob").lines.back() == "    -> mailbox /var/mail/bob (maildir), written as bob (uid 1001)");

    auto nobody = f.trace("nosuch@host.example");
    CHECK(nobody.exit_code == 67);
    CHECK(nobody.lines.back() == "    -> bounced: unknown user: \"nosuch\" (5.1.1)");
    auto broken = f.trace("broken");
    CHECK(broken.exit_code == 75);
    CHECK_THAT(broken.lines.back(), Catch::StartsWith("  -> deferred: user lookup failed"));
    auto remote = f.trace("x@elsewhere.example");
    CHECK(remote.exit_code == 0);
    CHECK(remote.lines[1] == "  remote address x@elsewhere.example: domain not in mydestination");
    CHECK(remote.lines.back() == "    -> remote: SMTP to the MX hosts of elsewhere.example (its A/AAAA when it has none)");
    f.relayhost = "[smtp.example]:587";
    auto relayed = f.trace("x@elsewhere.example");
    CHECK(relayed.lines.back() == "    -> remote: SMTP to the relayhost [smtp.example]:587");
    CHECK_THAT(relayed.json, Catch::Contains("\"remote\": {\"relayhost\": \"[smtp.example]:587\", \"domain\": \"elsewhere.example\"}"));
    auto bad = f.trace("a b@\x1b[2J");
    CHECK(bad.exit_code == 65);
    CHECK(bad.lines[0].find('\x1b') == std::string::npos);
}

TEST_CASE("mailctl trace prints alias lines with file:line, .forward steps, and who each command runs as", "[trace]") {
    Fixture f;
    f.world.aliases["team"] = {7, "bob, |/usr/bin/archive --list team, error:5.2.2 full"};
    ForwardResult refused;
    refused.kind = ForwardResult::Kind::refused;
    refused.path = "/home/bob/.forward";
    refused.shown_path = "~bob/.forward";
    refused.reason = "world-writable";
    f.world.forwards["bob"] = refused;
    auto team = f.trace("team@host.example");
    CHECK(team.lines == std::vector<std::string>{
                            "team@host.example",
                            "  alias team (/etc/aliases:7)",
                            "    local address bob@host.example: user bob",
                            "      ~bob/.forward ignored: world-writable",
                            "        -> mailbox /var/mail/bob (mbox), written as bob (uid 1001)",
                            "    -> command |/usr/bin/archive --list team, run as nobody (uid 65534), named at /etc/aliases:7",
                            "    -> bounced: full (5.2.2)",
                        });
    CHECK(team.exit_code == 73);  // the worst leaf: 5.2.2's sysexits code
    CHECK_THAT(team.json, Catch::StartsWith("{\"address\": \"team@host.example\", \"tree\": {\"step\": "));
    CHECK_THAT(team.json, Catch::Contains("\"kind\": \"command\", \"address\": \"team@host.example\", \"target\": "
                                          "\"/usr/bin/archive --list team\", \"provenance\": \"aliases:/etc/aliases:7\""));
    CHECK_THAT(team.json, Catch::Contains("\"user\": {\"name\": \"nobody\", \"uid\": 65534}"));
    CHECK_THAT(team.json, Catch::EndsWith("\"deferred\": null}"));
}

TEST_CASE("mailctl trace names a .forward under its user's home as ~user/.forward:LINE", "[trace]") {
    Fixture f;
    ForwardResult used;
    used.kind = ForwardResult::Kind::used;
    used.path = "/home/bob/.forward";
    used.shown_path = "~bob/.forward";
    used.lines = {{1, "\\bob, |/usr/bin/vacation bob"}};
    f.world.forwards["bob"] = used;
    auto bob = f.trace("bob");
    CHECK(bob.lines.back() == "      -> command |/usr/bin/vacation bob, run as bob (uid 1001), named at ~bob/.forward:1");
}
