// Queue runner: one attempt at one queued message (SPEC sections 3, 4, 8, 9).
#include "queue/queue_runner.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "delivery/alias_db.hpp"
#include "delivery/expansion_sources.hpp"
#include "support/test_support.hpp"

using namespace mailroom;
using namespace mailroom::mail;
using mailroom::test::dead_pid;
using mailroom::test::slurp;
using mailroom::test::spit;
using mailroom::test::TempDir;

namespace {

// Every name resolves to the test's own account, with a mailbox per name.
class OwnAccounts final : public core::UserDb {
public:
    core::Result<std::optional<core::UserInfo>> find(std::string_view name) const override {
        // No postmaster and no root: a failed notice to postmaster has nowhere to go.
        if (name == "nobody-here" || name == "postmaster" || name == "root") return std::optional<core::UserInfo>();
        return std::optional<core::UserInfo>(core::UserInfo{std::string(name), ::geteuid(), ::getegid(), "/", "/bin/sh", ""});
    }
    core::Result<std::optional<core::UserInfo>> find_uid(uid_t) const override { return std::optional<core::UserInfo>(); }
};

struct Harness {
    TempDir tmp;
    std::vector<std::string> qmgr_lines, local_lines, bounce_lines;
    std::vector<std::string> lmtp_lines;
    Spool spool = std::move(*Spool::open(tmp.path + "/spool"));
    QueueSettings settings;
    std::shared_ptr<OwnAccounts> users = std::make_shared<OwnAccounts>();
    std::shared_ptr<core::FixedClock> clock = std::make_shared<core::FixedClock>(::time(nullptr));
    DeliveryRights rights = DeliveryRights::of_this_process();

    Harness() {
        settings.myhostname = "host.example";
        settings.mydestination = {"host.example", "localhost"};
        settings.recipient_delimiter = "+";
        settings.local.mail_spool_dir = tmp.path;
        settings.local.hostname = "host.example";
        settings.local.locks.timeout = std::chrono::milliseconds(500);
    }
    RunnerContext context() {
        RunnerLogs logs{core::Logger::capture("qmgr", &qmgr_lines), core::Logger::capture("local", &local_lines),
                        core::Logger::capture("bounce", &bounce_lines), core::Logger::capture("lmtp", &lmtp_lines)};
        auto sources = std::make_shared<SystemExpansionSources>(tmp.path + "/aliases", users, ForwardPathSettings{});
        ExpansionSettings expansion;
        expansion.routing = settings.routing();
        return RunnerContext{spool, settings, users, std::move(logs), clock, rights, expansion, sources, sources, {}};
    }
    // One run of the entry with the clock at `now`.
    EntryRun run_at(const std::string& id, std::time_t now, bool force) {
        clock->set(now);
        return run_entry(context(), id, force);
    }

    std::string submit(std::string sender, std::vector<std::string> recipients, std::time_t arrival = ::time(nullptr)) {
        auto writer = QueueWriter::begin(spool);
        REQUIRE(writer);
        REQUIRE(writer->write("From: " + sender + "\nSubject: test\n\nhello\n"));
        Envelope envelope{std::move(sender), std::move(recipients), 1000, static_cast<uint64_t>(arrival) * 1'000'000};
        REQUIRE(writer->commit(envelope));
        return writer->id();
    }
    std::vector<std::string> queued() {
        std::vector<std::string> ids;
        REQUIRE(spool.for_each_entry(QueueFolder::queue, [&](const std::string& id) {
            ids.push_back(id);
            return true;
        }));
        return ids;
    }
    std::string mailbox(const std::string& user) { return slurp(tmp.path + "/" + user); }
};

bool any_line_contains(const std::vector<std::string>& lines, const std::string& text) {
    for (const auto& line : lines) {
        if (line.find(text) != std::string::npos) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("Local recipients go to their mailboxes, then the entry is removed, each step logged", "[runner]") {
    Harness h;
    auto id = h.submit("alice@host.example", {"bob@host.example", "carol+news@HOST.example", "dave"});
    auto run = h.run_at(id, ::time(nullptr), false);
    CHECK(run.outcome == EntryRun::Outcome::finished);
    CHECK(h.queued().empty());
    CHECK_THAT(h.mailbox("bob"), Catch::Contains("Delivered-To: bob@host.example\n"));
    CHECK_THAT(h.mailbox("carol"), Catch::Contains("Delivered-To: carol+news@host.example\n"));
    CHECK_THAT(h.mailbox("dave"), Catch::Contains("Delivered-To: dave@host.example\n"));
    CHECK_THAT(h.mailbox("bob"), Catch::StartsWith("From alice@host.example "));
    CHECK(any_line_contains(h.qmgr_lines, id + ": from=<alice@host.example>, size=46, nrcpt=3 (queue active)"));
    CHECK(any_line_contains(h.local_lines, id + ": to=<bob@host.example>, relay=local, delay="));
    CHECK(any_line_contains(h.local_lines, "dsn=2.0.0, status=sent (delivered to mailbox)"));
    CHECK(any_line_contains(h.qmgr_lines, id + ": removed"));
}

TEST_CASE("A delivery that first cuts a torn mailbox tail says so in its log line", "[runner]") {
    Harness h;
    std::string path = h.tmp.path + "/bob";
    spit(path, "");
    // What a writer killed in mid-append leaves: its record in the dotlock, then half a message.
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    spit(path + ".lock", std::to_string(dead_pid()) + " 0 " + std::to_string(st.st_dev) + " " +
                             std::to_string(st.st_ino) + "\n");
    spit(path, "From alice@host.example Thu Mar  5 07:08:09 2026\nReturn-Path: <ali", true);
    auto id = h.submit("alice@host.example", {"bob@host.example"});
    CHECK(h.run_at(id, ::time(nullptr), false).outcome == EntryRun::Outcome::finished);
    CHECK_THAT(h.mailbox("bob"), Catch::StartsWith("From alice@host.example "));
    CHECK_THAT(h.mailbox("bob"), !Catch::Contains("Return-Path: <ali\n"));
    CHECK(any_line_contains(h.local_lines, "status=sent (delivered to mailbox (first cut 66 bytes left by an "
                                           "interrupted delivery))"));
}

TEST_CASE("Unknown user: bounce 5.1.1, one RFC 3464 notice queued to the sender with the null sender", "[runner]") {
    Harness h;
    auto id = h.submit("alice@host.example", {"nobody-here@host.example", "bob@host.example"});
    auto run = h.run_at(id, ::time(nullptr), false);
    CHECK(run.outcome == EntryRun::Outcome::finished);
    REQUIRE(run.notices.size() == 1);
    CHECK(any_line_contains(h.local_lines, "to=<nobody-here@host.example>, relay=local"));
    CHECK(any_line_contains(h.local_lines, "dsn=5.1.1, status=bounced (unknown user: \"nobody-here\")"));
    CHECK(any_line_contains(h.bounce_lines, id + ": sender non-delivery notification: " + run.notices[0]));
    auto notice = read_entry(h.spool, QueueFolder::queue, run.notices[0]);
    REQUIRE(notice);
    CHECK(notice->envelope.sender.empty());
    CHECK(notice->envelope.recipients == std::vector<std::string>{"alice@host.example"});

    // Delivering the notice puts a multipart/report into alice's mailbox.
    auto notice_run = h.run_at(run.notices[0], ::time(nullptr), false);
    CHECK(notice_run.outcome == EntryRun::Outcome::finished);
    CHECK_THAT(h.mailbox("alice"), Catch::Contains("report-type=delivery-status"));
    CHECK_THAT(h.mailbox("alice"), Catch::Contains("Final-Recipient: rfc822; nobody-here@host.example"));
    CHECK_THAT(h.mailbox("alice"), Catch::StartsWith("From MAILER-DAEMON "));
}

TEST_CASE("A deferred recipient waits for its next try, with the reason kept, requeue makes it due", "[runner]") {
    Harness h;
    auto id = h.submit("alice@host.example", {"x@far.example"});
    std::time_t now = ::time(nullptr);
    auto run = h.run_at(id, now, false);
    CHECK(run.outcome == EntryRun::Outcome::waiting);
    auto seen = read_entry(h.spool, QueueFolder::queue, id);
    REQUIRE(seen);
    CHECK(seen->state.recipients[0].phase == RecipientPhase::deferred);
    CHECK(seen->state.recipients[0].text == "remote delivery not configured");
    CHECK(seen->state.recipients[0].next_try == now + 300);
    struct stat st {};
    REQUIRE(::stat(h.spool.entry_path(QueueFolder::queue, id).c_str(), &st) == 0);
    CHECK(st.st_mtime == now + 300);
    CHECK(any_line_contains(h.qmgr_lines, "to=<x@far.example>, relay=none, delay="));
    CHECK(any_line_contains(h.qmgr_lines, "dsn=4.3.5, status=deferred (remote delivery not configured)"));

    // Not due yet: a scheduled run leaves it alone; mta -q (force) tries it again.
    h.qmgr_lines.clear();
    h.run_at(id, now + 10, false);
    CHECK_FALSE(any_line_contains(h.qmgr_lines, "status=deferred"));
    h.run_at(id, now + 10, true);
    seen = read_entry(h.spool, QueueFolder::queue, id);
    REQUIRE(seen);
    CHECK(seen->state.recipients[0].attempts == 2);
    CHECK(seen->state.recipients[0].next_try == now + 10 + 600);  // the backoff doubled
}

TEST_CASE("Past maximal_queue_lifetime a deferred recipient bounces with 5.4.7", "[runner]") {
    Harness h;
    std::time_t now = ::time(nullptr);
    auto id = h.submit("alice@host.example", {"x@far.example"}, now - 6 * 86400);
    auto run = h.run_at(id, now, false);
    CHECK(run.outcome == EntryRun::Outcome::finished);
    REQUIRE(run.notices.size() == 1);
    CHECK(any_line_contains(h.qmgr_lines, id + ": from=<alice@host.example>, status=expired, returned to sender"));
    CHECK(any_line_contains(h.qmgr_lines, "dsn=5.4.7, status=bounced (delivery time expired"));
}

TEST_CASE("One delay notice after delay_warning_time, never two", "[runner]") {
    Harness h;
    std::time_t now = ::time(nullptr);
    auto id = h.submit("alice@host.example", {"x@far.example"}, now - 5 * 3600);
    auto first = h.run_at(id, now, true);
    CHECK(first.outcome == EntryRun::Outcome::waiting);
    REQUIRE(first.notices.size() == 1);
    CHECK(any_line_contains(h.bounce_lines, id + ": sender delay notification: " + first.notices[0]));
    auto second = h.run_at(id, now + 1, true);
    CHECK(second.notices.empty());
}

TEST_CASE("A failure of a message with the null sender goes to postmaster, a failed notice to postmaster is dropped",
          "[runner]") {
    Harness h;
    auto id = h.submit("", {"nobody-here@host.example"});
    auto run = run_entry_and_notices(h.context(), id, false);
    CHECK(run.outcome == EntryRun::Outcome::finished);
    REQUIRE(run.notices.size() == 1);
    CHECK(any_line_contains(h.bounce_lines, id + ": postmaster non-delivery notification: " + run.notices[0]));
    // postmaster does not exist in this test: that notice fails and is dropped, not looped.
    CHECK(any_line_contains(h.bounce_lines, "postmaster non-delivery notification dropped"));
    CHECK(h.queued().empty());
}

TEST_CASE("A corrupt entry is quarantined with a log line and the rest of the queue is delivered", "[runner]") {
    Harness h;
    auto bad = h.submit("alice@host.example", {"bob"});
    auto good = h.submit("alice@host.example", {"carol"});
    mailroom::test::spit(h.spool.entry_path(QueueFolder::queue, bad), "mailroom-queue 7 garbage\n");
    auto summary = run_queue_once(h.context(), true);
    REQUIRE(summary);
    CHECK(summary->quarantined == 1);
    CHECK(summary->finished == 1);
    CHECK(any_line_contains(h.qmgr_lines, "warning: " + bad + ": quarantined: "));
    CHECK_THAT(h.mailbox("carol"), Catch::Contains("hello"));
    CHECK(h.queued().empty());
}

TEST_CASE("A folder under a queue ID is quarantined once with one warning, then not seen again", "[runner]") {
    Harness h;
    auto good = h.submit("alice@host.example", {"carol"});
    std::string planted = "000000000Dir001";
    REQUIRE(::mkdir(h.spool.entry_path(QueueFolder::queue, planted).c_str(), 0700) == 0);
    auto summary = run_queue_once(h.context(), true);
    REQUIRE(summary);
    CHECK(summary->quarantined == 1);
    CHECK(summary->finished == 1);
    CHECK(summary->failed == 0);
    CHECK(any_line_contains(h.qmgr_lines, "warning: " + planted + ": quarantined: "));
    CHECK(h.queued().empty());
    size_t lines = h.qmgr_lines.size();
    summary = run_queue_once(h.context(), true);
    REQUIRE(summary);
    CHECK(summary->seen == 0);
    CHECK(h.qmgr_lines.size() == lines);
}

TEST_CASE("A bad recipient address in an entry bounces with 5.1.3 instead of stopping the entry", "[runner]") {
    Harness h;
    auto id = h.submit("alice@host.example", {"bad address@@x", "bob"});
    auto run = h.run_at(id, ::time(nullptr), false);
    CHECK(run.outcome == EntryRun::Outcome::finished);
    CHECK(any_line_contains(h.qmgr_lines, "dsn=5.1.3, status=bounced"));
    CHECK_THAT(h.mailbox("bob"), Catch::Contains("hello"));
}

TEST_CASE("A runner that may not act as a recipient's user leaves it untouched for a runner with more rights",
          "[runner]") {
    Harness h;
    // Every account is the test's own uid; this runner may deliver only as another one.
    h.rights = DeliveryRights::only_as(::geteuid() + 4242);
    auto id = h.submit("alice@host.example", {"bob@host.example"});
    auto run = h.run_at(id, ::time(nullptr), false);
    CHECK(run.outcome == EntryRun::Outcome::waiting);
    CHECK(run.exit_code == EX_TEMPFAIL);
    CHECK(any_line_contains(h.qmgr_lines, "to=<bob@host.example>: left for the daemon"));
    auto seen = read_entry(h.spool, QueueFolder::queue, id);
    REQUIRE(seen);
    CHECK(seen->state.recipients[0].phase == RecipientPhase::pending);
    CHECK(seen->state.recipients[0].attempts == 0);  // no attempt counted
    CHECK(::access((h.tmp.path + "/bob").c_str(), F_OK) != 0);

    h.rights = DeliveryRights::root();
    if (::geteuid() == 0) {
        CHECK(h.run_at(id, ::time(nullptr), false).outcome == EntryRun::Outcome::finished);
        CHECK_THAT(h.mailbox("bob"), Catch::Contains("Delivered-To: bob@host.example\n"));
    }
}

namespace {

// Compiles `text` as the harness's aliases file and database.
void use_aliases(Harness& h, const std::string& text) {
    std::string path = h.tmp.path + "/aliases";
    spit(path, text);
    auto file = read_aliases_file(path);
    REQUIRE(file);
    REQUIRE(compile_alias_db(*file, alias_db_path(path)));
}

size_t messages_in(const std::string& mbox) {
    size_t count = 0;
    for (size_t at = 0; (at = mbox.find("From alice@host.example ", at)) != std::string::npos; ++at) ++count;
    return count;
}

}  // namespace

TEST_CASE("An alias delivers to each member, logged with orig_to, an unknown member bounces to the sender",
          "[runner][expansion]") {
    Harness h;
    use_aliases(h, "team: bob, carol,\n  nobody-here\n");
    auto id = h.submit("alice@host.example", {"team@host.example", "dave@host.example"});
    auto run = h.run_at(id, ::time(nullptr), false);
    CHECK(run.outcome == EntryRun::Outcome::finished);
    CHECK_THAT(h.mailbox("bob"), Catch::Contains("Delivered-To: bob@host.example\n"));
    CHECK_THAT(h.mailbox("carol"), Catch::Contains("Delivered-To: carol@host.example\n"));
    CHECK_THAT(h.mailbox("dave"), Catch::Contains("Delivered-To: dave@host.example\n"));
    CHECK(any_line_contains(h.local_lines, "to=<bob@host.example>, orig_to=<team@host.example>, relay=local"));
    CHECK(any_line_contains(h.local_lines, "to=<nobody-here@host.example>, orig_to=<team@host.example>, relay=local"));
    CHECK(any_line_contains(h.local_lines, "to=<dave@host.example>, relay=local"));
    REQUIRE(run.notices.size() == 1);  // the unknown member bounced to the sender
}

TEST_CASE("Leaves are recorded with their own state, a partial failure retries only the failed leaves",
          "[runner][expansion]") {
    Harness h;
    use_aliases(h, "team: bob, carol\n");
    spit(h.tmp.path + "/carol", "");
    ::chmod((h.tmp.path + "/carol").c_str(), 0600);
    pid_t holder = mailroom::test::hold_lock_in_child(h.tmp.path + "/carol", std::chrono::milliseconds(1500));
    auto id = h.submit("alice@host.example", {"team@host.example"});
    std::time_t now = ::time(nullptr);
    auto first = h.run_at(id, now, false);
    int status = 0;
    ::waitpid(holder, &status, 0);
    CHECK(first.outcome == EntryRun::Outcome::waiting);
    auto seen = read_entry(h.spool, QueueFolder::queue, id);
    REQUIRE(seen);
    REQUIRE(seen->state.expanded(0));
    auto leaves = seen->state.current_leaves(0);
    REQUIRE(leaves.size() == 2);
    CHECK(leaves[0]->state.phase == RecipientPhase::delivered);
    CHECK(leaves[1]->state.phase == RecipientPhase::deferred);

    auto second = h.run_at(id, now + 3600, false);
    CHECK(second.outcome == EntryRun::Outcome::finished);
    CHECK(messages_in(h.mailbox("bob")) == 1);
    CHECK(messages_in(h.mailbox("carol")) == 1);
}

TEST_CASE("The failure notice of a list member goes to owner-NAME, not to the sender", "[runner][expansion]") {
    Harness h;
    use_aliases(h, "list: bob, nobody-here\nowner-list: carol\n");
    auto id = h.submit("alice@host.example", {"list@host.example"});
    auto run = h.run_at(id, ::time(nullptr), false);
    REQUIRE(run.notices.size() == 1);
    auto notice = read_entry(h.spool, QueueFolder::queue, run.notices[0]);
    REQUIRE(notice);
    CHECK(notice->envelope.recipients == std::vector<std::string>{"owner-list@host.example"});
    CHECK(any_line_contains(h.bounce_lines, "owner owner-list@host.example non-delivery notification"));
}

TEST_CASE("mailctl requeue re-expands a recipient whose leaves are not all done, without delivering the done ones again",
          "[runner][expansion]") {
    Harness h;
    use_aliases(h, "team: bob, carol\n");
    spit(h.tmp.path + "/carol", "");
    ::chmod((h.tmp.path + "/carol").c_str(), 0600);
    pid_t holder = mailroom::test::hold_lock_in_child(h.tmp.path + "/carol", std::chrono::milliseconds(1500));
    auto id = h.submit("alice@host.example", {"team@host.example"});
    std::time_t now = ::time(nullptr);
    h.run_at(id, now, false);
    int status = 0;
    ::waitpid(holder, &status, 0);

    use_aliases(h, "team: bob, dave\n");  // carol left the list meanwhile
    {
        auto locked = LockedEntry::lock(h.spool, QueueFolder::queue, id);
        REQUIRE(locked);
        REQUIRE(locked->entry);
        StateRecord requeued;
        requeued.kind = StateRecord::Kind::requeued;
        requeued.time = now;  // the same second as the expansion: order decides, not time
        REQUIRE(locked->entry->append({requeued}));
    }
    auto again = h.run_at(id, now + 2, false);
    CHECK(again.outcome == EntryRun::Outcome::finished);
    CHECK(messages_in(h.mailbox("bob")) == 1);
    CHECK(messages_in(h.mailbox("carol")) == 0);
    CHECK(messages_in(h.mailbox("dave")) == 1);
}
