// Queue runner and remote leaves (lib/queue/queue_runner.cpp with
// queue/remote_transport.hpp): batched per destination, at most the transport's
// recipient limit a call, outcomes recorded and logged as Postfix's smtp, a remote
// server's refusal reported with Remote-MTA and Diagnostic-Code; without a
// transport, deferred 4.3.5.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "delivery/expansion_sources.hpp"
#include "queue/queue_runner.hpp"
#include "support/test_support.hpp"

using namespace mailroom;
using namespace mailroom::mail;
using mailroom::test::slurp;
using mailroom::test::TempDir;

namespace {

class OwnAccounts final : public core::UserDb {
public:
    core::Result<std::optional<core::UserInfo>> find(std::string_view name) const override {
        if (name == "postmaster" || name == "root") return std::optional<core::UserInfo>();
        return std::optional<core::UserInfo>(core::UserInfo{std::string(name), ::geteuid(), ::getegid(), "/", "/bin/sh", ""});
    }
    core::Result<std::optional<core::UserInfo>> find_uid(uid_t) const override { return std::optional<core::UserInfo>(); }
};

// Answers each recipient from `answers` (by address; default 250) and records the calls.
class FakeRemote final : public RemoteTransport {
public:
    struct Call {
        std::string domain;
        std::vector<std::string> recipients;
    };
    bool one_destination = false;  // as with a relayhost
    size_t limit = 50;
    std::map<std::string, Status> answers;
    std::vector<Call> calls;

    std::string destination(std::string_view domain) const override {
        return one_destination ? "[relayhost]" : std::string(domain);
    }
    size_t recipient_limit() const override { return limit; }
    TransportResult deliver(const Message&, const Envelope&, std::string_view domain,
                            const std::vector<TransportRecipient>& recipients) override {
        TransportResult result;
        result.relay = "none";
        Call call{std::string(domain), {}};
        for (const auto& r : recipients) {
            call.recipients.push_back(r.address);
            auto found = answers.find(r.address);
            result.statuses.push_back(found != answers.end() ? found->second
                                                             : Status::ok("250 2.0.0 Ok: queued as ABC", "2.0.0"));
            result.relays.push_back("mx." + std::string(domain) + "[192.0.2.1]:25");
        }
        calls.push_back(std::move(call));
        return result;
    }
};

struct Harness {
    TempDir tmp;
    std::vector<std::string> qmgr_lines, local_lines, bounce_lines, lmtp_lines, smtp_lines;
    Spool spool = std::move(*Spool::open(tmp.path + "/spool"));
    QueueSettings settings;
    std::shared_ptr<OwnAccounts> users = std::make_shared<OwnAccounts>();
    std::shared_ptr<core::FixedClock> clock = std::make_shared<core::FixedClock>(::time(nullptr));
    std::shared_ptr<FakeRemote> remote = std::make_shared<FakeRemote>();

    Harness() {
        settings.myhostname = "host.example";
        settings.mydestination = {"host.example", "localhost"};
        settings.recipient_delimiter = "+";
        settings.local.mail_spool_dir = tmp.path;
        settings.local.hostname = "host.example";
    }
    RunnerContext context(bool with_remote = true) {
        RunnerLogs logs{core::Logger::capture("qmgr", &qmgr_lines), core::Logger::capture("local", &local_lines),
                        core::Logger::capture("bounce", &bounce_lines), core::Logger::capture("lmtp", &lmtp_lines),
                        core::Logger::capture("smtp", &smtp_lines)};
        auto sources = std::make_shared<SystemExpansionSources>(tmp.path + "/aliases", users, ForwardPathSettings{});
        ExpansionSettings expansion;
        expansion.routing = settings.routing();
        RunnerContext context{spool, settings, users, std::move(logs), clock, DeliveryRights::of_this_process(),
                              expansion, sources, sources, {}};
        if (with_remote) context.remote_transport = remote;
        return context;
    }
    std::string submit(std::vector<std::string> recipients) {
        auto writer = QueueWriter::begin(spool);
        REQUIRE(writer);
        REQUIRE(writer->write("From: alice@host.example\nSubject: test\n\nhello\n"));
        Envelope envelope{"alice@host.example", std::move(recipients), 1000,
                          static_cast<uint64_t>(::time(nullptr)) * 1'000'000};
        REQUIRE(writer->commit(envelope));
        return writer->id();
    }
    EntryRun run(const std::string& id, bool with_remote = true) { return run_entry(context(with_remote), id, true); }
};

bool any_line_contains(const std::vector<std::string>& lines, const std::string& text) {
    for (const auto& line : lines) {
        if (line.find(text) != std::string::npos) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("Without a remote transport a remote recipient is deferred 4.3.5, remote delivery not configured",
          "[runner][remote]") {
    Harness h;
    auto id = h.submit({"bob@far.example"});
    auto run = h.run(id, false);
    CHECK(run.outcome == EntryRun::Outcome::waiting);
    CHECK(h.remote->calls.empty());
    CHECK(any_line_contains(h.qmgr_lines, id + ": to=<bob@far.example>, relay=none, "));
    CHECK(any_line_contains(h.qmgr_lines, "dsn=4.3.5, status=deferred (remote delivery not configured)"));
}

TEST_CASE("The remote recipients of one domain go in one call, another domain's in another, local ones not at all",
          "[runner][remote]") {
    Harness h;
    auto id = h.submit({"bob@far.example", "carol@other.example", "dave@FAR.example", "erin@host.example"});
    auto run = h.run(id);
    CHECK(run.outcome == EntryRun::Outcome::finished);
    REQUIRE(h.remote->calls.size() == 2);
    CHECK(h.remote->calls[0].domain == "far.example");
    CHECK(h.remote->calls[0].recipients == std::vector<std::string>{"bob@far.example", "dave@FAR.example"});
    CHECK(h.remote->calls[1].recipients == std::vector<std::string>{"carol@other.example"});
    CHECK_THAT(slurp(h.tmp.path + "/erin"), Catch::Contains("Delivered-To: erin@host.example"));
    CHECK(any_line_contains(h.smtp_lines, id + ": to=<bob@far.example>, relay=mx.far.example[192.0.2.1]:25, delay="));
    CHECK(any_line_contains(h.smtp_lines, "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as ABC)"));
    CHECK_FALSE(any_line_contains(h.smtp_lines, "erin"));
}

TEST_CASE("With one destination for all, as with a relayhost, every remote recipient goes in one call",
          "[runner][remote]") {
    Harness h;
    h.remote->one_destination = true;
    auto id = h.submit({"bob@far.example", "carol@other.example"});
    h.run(id);
    REQUIRE(h.remote->calls.size() == 1);
    CHECK(h.remote->calls[0].recipients.size() == 2);
}

TEST_CASE("A destination's recipients go at most recipient_limit a call", "[runner][remote]") {
    Harness h;
    h.remote->limit = 50;
    std::vector<std::string> recipients;
    for (int i = 0; i < 120; ++i) recipients.push_back("user" + std::to_string(i) + "@far.example");
    auto id = h.submit(recipients);
    CHECK(h.run(id).outcome == EntryRun::Outcome::finished);
    REQUIRE(h.remote->calls.size() == 3);
    CHECK(h.remote->calls[0].recipients.size() == 50);
    CHECK(h.remote->calls[1].recipients.size() == 50);
    CHECK(h.remote->calls[2].recipients.size() == 20);
    CHECK(h.remote->calls[2].recipients.back() == "user119@far.example");
}

TEST_CASE("A 4xx defers that recipient alone and a 5xx bounces it with Remote-MTA and Diagnostic-Code from the reply",
          "[runner][remote]") {
    Harness h;
    h.remote->answers.emplace(
        "dave@far.example",
        Status::perm("5.1.1", "host mx.far.example[192.0.2.1] said: 550 5.1.1 <dave@far.example>: User unknown (in "
                              "reply to RCPT TO command)"));
    h.remote->answers.emplace("erin@far.example",
                              Status::temp("4.2.1", "host mx.far.example[192.0.2.1] said: 450 4.2.1 try later (in "
                                                    "reply to RCPT TO command)"));
    auto id = h.submit({"bob@far.example", "dave@far.example", "erin@far.example"});
    auto run = h.run(id);
    CHECK(run.outcome == EntryRun::Outcome::waiting);
    REQUIRE(run.notices.size() == 1);
    CHECK(any_line_contains(h.smtp_lines, "to=<dave@far.example>, relay=mx.far.example[192.0.2.1]:25"));
    CHECK(any_line_contains(h.smtp_lines, "dsn=5.1.1, status=bounced (host mx.far.example[192.0.2.1] said: 550"));
    CHECK(any_line_contains(h.smtp_lines, "dsn=4.2.1, status=deferred (host mx.far.example[192.0.2.1] said: 450"));
    // The queued notice, read as the file it is (docs/spool.md).
    const std::string body = slurp(h.tmp.path + "/spool/queue/" + run.notices[0]);
    CHECK_THAT(body, Catch::Contains("Final-Recipient: rfc822; dave@far.example\n"));
    CHECK_THAT(body, Catch::Contains("Remote-MTA: dns; mx.far.example\n"));
    CHECK_THAT(body, Catch::Contains("Diagnostic-Code: smtp; 550 5.1.1 <dave@far.example>: User unknown\n"));
    CHECK_THAT(body, !Catch::Contains("erin@far.example>: try later"));
    // The next run offers only the deferred recipient.
    h.remote->calls.clear();
    h.remote->answers.clear();
    CHECK(h.run(id).outcome == EntryRun::Outcome::finished);
    REQUIRE(h.remote->calls.size() == 1);
    CHECK(h.remote->calls[0].recipients == std::vector<std::string>{"erin@far.example"});
}
