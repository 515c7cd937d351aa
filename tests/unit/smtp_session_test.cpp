// The SMTP listener's session features (SPEC 7, docs/smtpd.md "The dialogue"): STARTTLS
// (RFC 3207) and the command injection it must refuse (CVE-2011-0411), AUTH PLAIN and
// LOGIN (RFC 4954, 4616) under TLS only, submission's 530, the Gatekeeper asked at
// connect, HELO, MAIL and RCPT, ETRN (RFC 1985), and the TLS and AUTH facts in
// Received: and in the Transaction (RFC 3848). The driver here does what lib/net's
// server does at Next::starttls and Next::authenticate; every script is run whole and
// in other chunkings, and must give the same transcript.
#include "smtp/session.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "mail/mail_date.hpp"

using namespace mailroom;
using mailroom::mail::Status;
using namespace mailroom::smtp;

namespace {

using Next = Session::Next;

constexpr std::time_t fixed_now = 1'700'000'000;
const std::string host = "mx.example.org";
const TlsFacts tls13{"TLSv1.3", "TLS_AES_256_GCM_SHA384", 256};

// ---- the fake door: records what it is asked, as events, and what each MAIL carried

struct DoorPlan {
    std::optional<Status> flush;  // flush_domain's answer; nullopt: "no queue to run"
};

class FakeDoor final : public Door {
public:
    explicit FakeDoor(DoorPlan plan, std::vector<std::string>& events) : plan_(std::move(plan)), events_(events) {}

    Status open(const Transaction& transaction) override {
        events_.push_back("open " + transaction.mail.sender.path());
        opened.push_back(transaction);
        return Status::ok("sender ok", "2.1.0");
    }
    Status add_recipient(const Transaction&, const RcptTo& rcpt) override {
        events_.push_back("rcpt " + rcpt.recipient.path());
        return Status::ok("recipient ok", "2.1.5");
    }
    core::Result<std::string> begin_data(const Transaction&) override {
        events_.push_back("begin");
        text_.clear();
        return std::string("7QvK2m");
    }
    core::Result<void> write(std::string_view text) override {
        if (events_.empty() || events_.back() != "write") events_.push_back("write");
        text_ += text;
        return {};
    }
    void abort() override {
        events_.push_back("abort");
        text_.clear();
    }
    std::optional<Status> flush_domain(std::string_view domain) override {
        events_.push_back("flush " + std::string(domain));
        return plan_.flush;
    }
    void commit() {
        events_.push_back("commit");
        messages.push_back(text_);
        text_.clear();
    }

    std::vector<Transaction> opened;
    std::vector<std::string> messages;

private:
    DoorPlan plan_;
    std::vector<std::string>& events_;
    std::string text_;
};

// A door that keeps Door's own flush_domain (no queue: ETRN is 502).
class PlainDoor final : public Door {
public:
    Status open(const Transaction&) override { return Status::ok(); }
    Status add_recipient(const Transaction&, const RcptTo&) override { return Status::ok(); }
    core::Result<std::string> begin_data(const Transaction&) override { return std::string("id"); }
    core::Result<void> write(std::string_view) override { return {}; }
    void abort() override {}
};

// ---- a Gatekeeper that says what it is told to and records what it was asked

struct GatePlan {
    std::optional<Refusal> connect;
    bool relay = false;
    std::map<std::string, Refusal> helo;       // HELO name → refusal
    std::map<std::string, Refusal> sender;     // sender path → refusal
    std::map<std::string, Refusal> recipient;  // recipient path → refusal
    // Record SessionFacts::protocol too (the cases that check it ask).
    bool record_protocol = false;
};

class RecordingGatekeeper final : public Gatekeeper {
public:
    explicit RecordingGatekeeper(GatePlan plan) : plan_(std::move(plan)) {}

    ClientVerdict connect(const ClientInfo& client) const override {
        calls.push_back("connect " + client.name + "[" + client.address + "]");
        return ClientVerdict{plan_.connect, plan_.relay};
    }
    std::optional<Refusal> helo(const SessionFacts& facts, std::string_view helo) const override {
        calls.push_back("helo " + std::string(helo) + describe(facts));
        return find(plan_.helo, std::string(helo));
    }
    std::optional<Refusal> sender(const SessionFacts& facts, const MailFrom& mail) const override {
        calls.push_back("sender " + mail.sender.path() + describe(facts));
        return find(plan_.sender, mail.sender.path());
    }
    std::optional<Refusal> recipient(const SessionFacts& facts, const Transaction& transaction,
                                     const RcptTo& rcpt) const override {
        calls.push_back("recipient " + rcpt.recipient.path() + " of " + transaction.mail.sender.path() +
                        describe(facts));
        return find(plan_.recipient, rcpt.recipient.path());
    }

    mutable std::vector<std::string> calls;

private:
    // Every fact, copied at once into the record.
    std::string describe(const SessionFacts& facts) const {
        return " [client=" + facts.client.name + " helo=" + std::string(facts.helo) +
               " auth=" + std::string(facts.auth_user) + " relay=" + (facts.relay_client ? "yes" : "no") +
               (plan_.record_protocol ? " proto=" + std::string(facts.protocol) : std::string()) + "]";
    }
    static std::optional<Refusal> find(const std::map<std::string, Refusal>& table, const std::string& key) {
        auto it = table.find(key);
        if (it == table.end()) return std::nullopt;
        return it->second;
    }
    GatePlan plan_;
};

// ---- the driver

struct Setup {
    SessionSettings settings;
    ClientInfo client{"mail.client.example", "192.0.2.7"};
    DoorPlan door;
    // The fake password table: user → password. A check that finds the pair is
    // accepted as that user; any other is refused; unavailable when the table is down.
    std::map<std::string, std::string> passwords{{"alice", "s3cret"}, {"bob", "hunter2"}};
    bool passwords_down = false;
    std::shared_ptr<RecordingGatekeeper> gate;  // also in settings.gatekeeper when set
    // smtps: TLS is on before the greeting (tls_started before greeting()).
    bool implicit_tls = false;
};

Setup smtp_setup() {
    Setup setup;
    setup.settings.dialect = Dialect::smtp;
    setup.settings.hostname = host;
    setup.settings.size_limit = 1'000'000;
    setup.settings.tls_offered = true;
    setup.settings.auth_offered = true;
    return setup;
}

void use_gate(Setup& setup, GatePlan plan) {
    setup.gate = std::make_shared<RecordingGatekeeper>(std::move(plan));
    setup.settings.gatekeeper = setup.gate;
}

struct Transcript {
    std::string greeting;
    std::string out;                   // every reply after the greeting
    std::vector<std::string> events;   // the door's calls, "starttls", "check USER PASSWORD"
    std::vector<std::string> gate;     // the gatekeeper's calls
    std::vector<std::string> messages;
    std::vector<Transaction> opened;   // each transaction as MAIL opened it
    std::vector<std::string> out_at_handshake;  // what had been said when each handshake began
    bool closed = false;
    bool cleartext_after_starttls = false;  // Next::starttls with bytes still unread
    size_t consumed = 0;
    TlsFacts tls;
    std::string auth_user;
    size_t auth_failures = 0;
    std::vector<std::string> violations;
};

// Feeds each element of `feeds` as one read of the client's bytes, the way lib/net's
// server does: unconsumed bytes wait for the next read; Next::commit is answered with
// committed(); Next::authenticate with the password table's verdict; Next::starttls,
// when nothing is left unread, with a handshake and tls_started() (bytes left unread
// are what a client said in the clear after STARTTLS: the server closes); nothing is
// fed after Next::close.
Transcript drive_feeds(const Setup& setup, const std::vector<std::string>& feeds) {
    Transcript t;
    FakeDoor door(setup.door, t.events);
    core::FixedClock clock(fixed_now);
    if (setup.gate) setup.gate->calls.clear();
    Session session(setup.settings, setup.client, door, clock);
    if (setup.implicit_tls) session.tls_started(tls13);
    t.greeting = session.greeting();
    if (session.closed()) t.closed = true;
    std::string pending;
    for (const auto& bytes : feeds) {
        if (t.closed) break;
        pending += bytes;
        std::string_view view(pending);
        for (;;) {
            const auto progress = session.feed(view, t.out);
            if (progress.consumed > view.size()) FAIL("consumed more than it was given");
            view.remove_prefix(progress.consumed);
            t.consumed += progress.consumed;
            if (progress.next == Next::close) {
                t.closed = true;
                break;
            }
            if (progress.next == Next::read) {
                if (!view.empty()) t.violations.push_back("Next::read with bytes left");
                break;
            }
            if (progress.next == Next::commit) {
                door.commit();
                session.committed({Status::ok("queued as 7QvK2m")}, t.out);
                continue;
            }
            if (progress.next == Next::authenticate) {
                auto [user, password] = session.take_credentials();
                // The session keeps no copy of what it handed over.
                auto again = session.take_credentials();
                if (!again.first.empty() || !again.second.empty()) t.violations.push_back("credentials kept");
                t.events.push_back("check " + user + " " + password);
                AuthVerdict verdict = AuthVerdict::refused;
                if (setup.passwords_down) {
                    verdict = AuthVerdict::unavailable;
                } else if (auto it = setup.passwords.find(user); it != setup.passwords.end() && it->second == password) {
                    verdict = AuthVerdict::accepted;
                }
                session.authenticated(verdict, t.out, user);
                continue;
            }
            // Next::starttls
            if (!view.empty()) {
                t.cleartext_after_starttls = true;
                t.closed = true;
                break;
            }
            t.events.push_back("starttls");
            t.out_at_handshake.push_back(t.out);
            session.tls_started(tls13);
        }
        pending.erase(0, pending.size() - view.size());
    }
    if (t.closed) {
        // After Next::close nothing more is read or answered.
        const size_t before = t.out.size();
        const auto again = session.feed("NOOP\r\n", t.out);
        if (again.consumed != 0 || again.next != Next::close || t.out.size() != before) {
            t.violations.push_back("the session went on after Next::close");
        }
    }
    t.gate = setup.gate ? setup.gate->calls : std::vector<std::string>{};
    t.messages = door.messages;
    t.opened = door.opened;
    t.tls = session.tls();
    t.auth_user = session.auth_user();
    t.auth_failures = session.auth_failures();
    return t;
}

// `flights`: what the client sends before it waits for a TLS handshake (a flight
// that needs one ends with the STARTTLS line). Each flight is fed in `step`-byte
// reads (0: whole); no read spans two flights.
Transcript drive(const Setup& setup, const std::vector<std::string>& flights, size_t step) {
    std::vector<std::string> feeds;
    for (const auto& flight : flights) {
        const size_t n = step == 0 ? std::max<size_t>(flight.size(), 1) : step;
        for (size_t at = 0; at < flight.size(); at += n) feeds.push_back(flight.substr(at, n));
    }
    return drive_feeds(setup, feeds);
}

bool same(const Transcript& a, const Transcript& b) {
    return a.greeting == b.greeting && a.out == b.out && a.events == b.events && a.gate == b.gate &&
           a.messages == b.messages && a.out_at_handshake == b.out_at_handshake && a.closed == b.closed &&
           a.cleartext_after_starttls == b.cleartext_after_starttls && a.consumed == b.consumed &&
           a.auth_user == b.auth_user && a.auth_failures == b.auth_failures;
}

// Runs the flights whole, one byte at a time and in 2- and 7-byte reads, and
// requires the same transcript from each; returns the whole run's.
Transcript run(const Setup& setup, const std::vector<std::string>& flights) {
    const Transcript whole = drive(setup, flights, 0);
    CHECK(whole.violations == std::vector<std::string>{});
    CHECK_FALSE(whole.cleartext_after_starttls);
    for (size_t step : {size_t{1}, size_t{2}, size_t{7}}) {
        INFO("fed " << step << " bytes at a time");
        const Transcript other = drive(setup, flights, step);
        CHECK(other.violations == std::vector<std::string>{});
        CHECK(other.out == whole.out);
        CHECK(other.events == whole.events);
        CHECK(other.gate == whole.gate);
        CHECK(same(other, whole));
    }
    return whole;
}

Transcript run(const Setup& setup, const std::string& script) { return run(setup, std::vector<std::string>{script}); }

// Each reply's last line (a multi-line reply folded into its last line), having
// checked that every line has the shape of a reply.
std::vector<std::string> replies_of(const std::string& out) {
    std::vector<std::string> replies;
    size_t at = 0;
    while (at < out.size()) {
        const size_t end = out.find("\r\n", at);
        REQUIRE(end != std::string::npos);
        const std::string line = out.substr(at, end - at);
        INFO("reply line: " << line);
        REQUIRE(line.size() >= 4);
        REQUIRE((line[0] >= '2' && line[0] <= '5'));
        REQUIRE((line[3] == ' ' || line[3] == '-'));
        if (line[3] == ' ') replies.push_back(line);
        at = end + 2;
    }
    return replies;
}

// Each reply starts with the expected text, and there are as many.
void expect_replies(const Transcript& t, const std::vector<std::string>& expected) {
    const auto replies = replies_of(t.out);
    INFO("replies:\n" << t.out);
    REQUIRE(replies.size() == expected.size());
    for (size_t i = 0; i < replies.size(); ++i) CHECK_THAT(replies[i], Catch::StartsWith(expected[i]));
}

const std::string ehlo = "EHLO client.example\r\n";
const std::string ehlo_ok = "250 DSN";  // the last line of the EHLO reply
const std::string starttls = "STARTTLS\r\n";
const std::string from = "MAIL FROM:<alice@example.org>\r\n";
const std::string rcpt_bob = "RCPT TO:<bob@example.org>\r\n";
const std::string data = "DATA\r\nSubject: hi\r\n\r\nHello.\r\n.\r\n";
const std::string plain_alice = "AGFsaWNlAHMzY3JldA==";  // "\0alice\0s3cret"

// The flights of a client that says EHLO, STARTTLS, and EHLO again under TLS.
std::vector<std::string> under_tls(const std::string& then) { return {ehlo + starttls, ehlo + then}; }

// The lines of the last EHLO reply in `out` (each without "250-"/"250 ").
std::vector<std::string> last_ehlo_lines(const std::string& out) {
    std::vector<std::string> lines;
    size_t at = out.rfind("250-" + host + "\r\n");
    REQUIRE(at != std::string::npos);
    while (at < out.size()) {
        const size_t end = out.find("\r\n", at);
        lines.push_back(out.substr(at + 4, end - at - 4));
        const bool last = out[at + 3] == ' ';
        at = end + 2;
        if (last) break;
    }
    return lines;
}

bool has_line(const std::vector<std::string>& lines, const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
}

}  // namespace

// ---- EHLO

TEST_CASE("EHLO offers STARTTLS only while TLS is not on, and AUTH PLAIN LOGIN only under TLS", "[smtp_session]") {
    Setup setup = smtp_setup();
    const Transcript t = run(setup, under_tls(""));
    // Before TLS: STARTTLS, no AUTH.
    const std::string clear = t.out.substr(0, t.out.find("220 2.0.0"));
    CHECK(clear ==
          "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-STARTTLS\r\n"
          "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n");
    // Under TLS: AUTH, no STARTTLS.
    CHECK(t.out.substr(t.out.find("Ready to start TLS\r\n") + 20) ==
          "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-AUTH PLAIN LOGIN\r\n"
          "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n");

    SECTION("without a certificate there is no STARTTLS, and without TLS no AUTH") {
        setup.settings.tls_offered = false;
        const auto lines = last_ehlo_lines(run(setup, ehlo).out);
        CHECK_FALSE(has_line(lines, "STARTTLS"));
        CHECK_FALSE(has_line(lines, "AUTH PLAIN LOGIN"));
    }
    SECTION("without auth_offered there is no AUTH under TLS either") {
        setup.settings.auth_offered = false;
        const auto lines = last_ehlo_lines(run(setup, under_tls("")).out);
        CHECK_FALSE(has_line(lines, "AUTH PLAIN LOGIN"));
        CHECK_FALSE(has_line(lines, "STARTTLS"));
    }
    SECTION("an smtps session (TLS before the greeting) offers AUTH and no STARTTLS") {
        setup.implicit_tls = true;
        const auto lines = last_ehlo_lines(run(setup, ehlo).out);
        CHECK(has_line(lines, "AUTH PLAIN LOGIN"));
        CHECK_FALSE(has_line(lines, "STARTTLS"));
    }
    SECTION("ETRN is offered only with settings.etrn") {
        CHECK_FALSE(has_line(last_ehlo_lines(run(setup, ehlo).out), "ETRN"));
        setup.settings.etrn = true;
        CHECK(has_line(last_ehlo_lines(run(setup, ehlo).out), "ETRN"));
    }
    SECTION("HELO is answered with the host name alone") {
        CHECK(run(setup, "HELO client.example\r\n").out == "250 mx.example.org\r\n");
    }
}

// ---- STARTTLS

TEST_CASE("STARTTLS is answered 220 2.0.0 before the handshake, and TLS is on after it", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), {ehlo + starttls});
    CHECK(t.events == std::vector<std::string>{"starttls"});
    REQUIRE(t.out_at_handshake.size() == 1);
    // The 220 is the last thing said in the clear.
    CHECK_THAT(t.out_at_handshake[0], Catch::EndsWith("\r\n220 2.0.0 Ready to start TLS\r\n"));
    CHECK(t.tls.protocol == "TLSv1.3");
    CHECK(t.tls.cipher == "TLS_AES_256_GCM_SHA384");
    CHECK(t.tls.bits == 256);
    CHECK_FALSE(t.closed);
    expect_replies(t, {ehlo_ok, "220 2.0.0 Ready to start TLS"});
}

TEST_CASE("STARTTLS with anything pipelined after it is refused 554 5.5.1 and closes, the command never executed",
          "[smtp_session]") {
    // CVE-2011-0411: the bytes after STARTTLS came in the clear; a server that answers
    // them inside TLS lets whoever inserted them speak for the client. Each case is
    // fed in reads that keep the STARTTLS line's end and what follows it together
    // (the session can only see what the same read holds); the lines before it are
    // fed whole, and one byte at a time.
    const std::vector<std::string> injected = {
        "MAIL FROM:<mallory@evil.example>\r\n",
        "RSET\r\n",
        "QUIT\r\n",
        "\r\n",
        "R",  // a single byte, not even a line
        "AUTH PLAIN " + plain_alice + "\r\n",
    };
    Setup setup = smtp_setup();
    use_gate(setup, GatePlan{});
    for (const auto& after : injected) {
        for (bool byte_wise_before : {false, true}) {
            // Where the read before the one with the injection ends: nowhere (STARTTLS
            // and what follows in one read), inside the verb, between CR and LF.
            for (size_t cut : {size_t{0}, size_t{6}, size_t{9}}) {
                INFO("injected: " << after << " cut at: " << cut << " byte-wise before: " << byte_wise_before);
                std::vector<std::string> feeds;
                if (byte_wise_before) {
                    for (char c : ehlo) feeds.emplace_back(1, c);
                } else {
                    feeds.push_back(ehlo);
                }
                const std::string rest = starttls + after;
                if (cut > 0) feeds.push_back(rest.substr(0, cut));
                feeds.push_back(rest.substr(cut));
                const Transcript t = drive_feeds(setup, feeds);
                CHECK(t.violations == std::vector<std::string>{});
                expect_replies(t, {ehlo_ok, "554 5.5.1 Error: command pipelining after STARTTLS, closing"});
                CHECK(t.closed);
                // No handshake was asked for, nothing left for a driver to read later.
                CHECK_FALSE(t.cleartext_after_starttls);
                CHECK(t.events == std::vector<std::string>{});
                CHECK_FALSE(t.tls.active());
                CHECK(t.auth_user.empty());
                CHECK_THAT(t.out, !Catch::Contains("220 2.0.0"));
                // The injected command reached neither the door nor the gatekeeper.
                CHECK(t.gate == std::vector<std::string>{"connect mail.client.example[192.0.2.7]",
                                                         "helo client.example [client=mail.client.example helo= auth= "
                                                         "relay=no]"});
            }
        }
    }
}

TEST_CASE("After the TLS handshake everything said before is forgotten and EHLO comes again", "[smtp_session]") {
    Setup setup = smtp_setup();
    setup.client = ClientInfo{"mail.client.example", "192.0.2.7"};
    const Transcript t = run(setup, {"EHLO old.example\r\n" + starttls,
                                     from + "EHLO new.example\r\n" + from + rcpt_bob + data});
    // MAIL before the new EHLO: the old greeting does not count under TLS.
    expect_replies(t, {ehlo_ok, "220 2.0.0", "503 5.5.1 Error: send HELO/EHLO first", ehlo_ok, "250 2.1.0",
                       "250 2.1.5", "354", "250 2.0.0"});
    REQUIRE(t.opened.size() == 1);
    CHECK(t.opened[0].helo == "new.example");
    CHECK(t.opened[0].protocol == "ESMTPS");
    CHECK(t.opened[0].auth_user.empty());
    CHECK(t.opened[0].tls.protocol == "TLSv1.3");
    REQUIRE(t.messages.size() == 1);
    const std::string date = mail::rfc5322_date(fixed_now);
    CHECK(t.messages[0] ==
          "Received: from new.example (mail.client.example [192.0.2.7])\n"
          "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n"
          "\tby mx.example.org (mailroom) with ESMTPS id 7QvK2m\n"
          "\tfor <bob@example.org>; " + date + "\nSubject: hi\n\nHello.\n");
}

TEST_CASE("A transaction begun before STARTTLS is refused STARTTLS and goes on in the clear", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), ehlo + from + starttls + rcpt_bob + data);
    expect_replies(t, {ehlo_ok, "250 2.1.0", "503 5.5.1 Error: MAIL transaction in progress", "250 2.1.5", "354",
                       "250 2.0.0"});
    CHECK(t.events == std::vector<std::string>{"open <alice@example.org>", "rcpt <bob@example.org>", "begin", "write",
                                               "commit"});
    CHECK_FALSE(t.tls.active());
}

TEST_CASE("STARTTLS is refused when TLS is on, with an argument, before EHLO, and where it is not offered",
          "[smtp_session]") {
    Setup setup = smtp_setup();
    SECTION("a second STARTTLS under TLS is 502 5.5.1 and the session goes on") {
        const Transcript t = run(setup, under_tls(starttls + "NOOP\r\n"));
        expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "502 5.5.1", "250 2.0.0"});
        CHECK(t.events == std::vector<std::string>{"starttls"});
    }
    SECTION("an smtps session knows no STARTTLS") {
        setup.implicit_tls = true;
        const Transcript t = run(setup, ehlo + starttls + "NOOP\r\n");
        expect_replies(t, {ehlo_ok, "502 5.5.1", "250 2.0.0"});
        CHECK(t.events.empty());
    }
    SECTION("an argument is 501 5.5.4") {
        const Transcript t = run(setup, ehlo + "STARTTLS now\r\n" + "NOOP\r\n");
        expect_replies(t, {ehlo_ok, "501 5.5.4 Syntax: STARTTLS", "250 2.0.0"});
        CHECK(t.events.empty());
    }
    SECTION("before EHLO it is 503 5.5.1") {
        const Transcript t = run(setup, starttls + ehlo);
        expect_replies(t, {"503 5.5.1", ehlo_ok});
        CHECK(t.events.empty());
    }
    SECTION("without a certificate it is 502 5.5.1") {
        setup.settings.tls_offered = false;
        const Transcript t = run(setup, ehlo + starttls + "NOOP\r\n");
        expect_replies(t, {ehlo_ok, "502 5.5.1", "250 2.0.0"});
        CHECK(t.events.empty());
    }
    SECTION("LMTP knows no STARTTLS") {
        setup.settings.dialect = Dialect::lmtp;
        const Transcript t = run(setup, "LHLO client.example\r\n" + starttls + "NOOP\r\n");
        expect_replies(t, {ehlo_ok, "502 5.5.1", "250 2.0.0"});
        CHECK(t.events.empty());
    }
}

// ---- AUTH

TEST_CASE("AUTH before TLS is refused 538 5.7.11 and no password is checked", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), ehlo + "AUTH PLAIN " + plain_alice + "\r\n" + "AUTH LOGIN\r\nNOOP\r\n");
    expect_replies(t, {ehlo_ok, "538 5.7.11 Encryption required for requested authentication mechanism", "538 5.7.11",
                       "250 2.0.0"});
    CHECK(t.events.empty());
    CHECK(t.auth_user.empty());
}

TEST_CASE("AUTH where it is not offered is 502 5.5.1", "[smtp_session]") {
    Setup setup = smtp_setup();
    setup.settings.auth_offered = false;
    const Transcript t = run(setup, under_tls("AUTH PLAIN " + plain_alice + "\r\nNOOP\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "502 5.5.1", "250 2.0.0"});
    CHECK(t.events == std::vector<std::string>{"starttls"});
}

TEST_CASE("AUTH PLAIN with an initial response is checked and answered 235 2.7.0", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), under_tls("AUTH PLAIN " + plain_alice + "\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "235 2.7.0 Authentication successful"});
    CHECK(t.events == std::vector<std::string>{"starttls", "check alice s3cret"});
    CHECK(t.auth_user == "alice");
    CHECK(t.auth_failures == 0);
}

TEST_CASE("AUTH PLAIN without an initial response gets an empty 334 challenge and takes the next line",
          "[smtp_session]") {
    const Transcript t = run(smtp_setup(), under_tls("AUTH PLAIN\r\n" + plain_alice + "\r\n"));
    // "334 " and nothing more: an empty challenge (RFC 4954 4).
    CHECK_THAT(t.out, Catch::Contains("\r\n334 \r\n235 2.7.0 Authentication successful\r\n"));
    CHECK(t.events == std::vector<std::string>{"starttls", "check alice s3cret"});
    CHECK(t.auth_user == "alice");
}

TEST_CASE("AUTH PLAIN with = as its initial response is an empty response and is refused 535 5.7.8",
          "[smtp_session]") {
    const Transcript t = run(smtp_setup(), under_tls("AUTH PLAIN =\r\nAUTH PLAIN " + plain_alice + "\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "535 5.7.8", "235 2.7.0"});
    // No password check for an empty response; the next AUTH is heard.
    CHECK(t.events == std::vector<std::string>{"starttls", "check alice s3cret"});
}

TEST_CASE("AUTH cancelled with * is answered 501 5.7.0 and nothing is checked", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), under_tls("AUTH PLAIN\r\n*\r\nAUTH LOGIN\r\n*\r\nAUTH LOGIN YWxpY2U=\r\n*\r\n"
                                                     "AUTH PLAIN *\r\nNOOP\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "334 ", "501 5.7.0 Error: authentication aborted", "334 VXNlcm5hbWU6",
                       "501 5.7.0", "334 UGFzc3dvcmQ6", "501 5.7.0", "501 5.7.0", "250 2.0.0"});
    CHECK(t.events == std::vector<std::string>{"starttls"});
    CHECK(t.auth_user.empty());
    CHECK(t.auth_failures == 0);
}

TEST_CASE("AUTH with a response that is not base64 is refused 501 5.5.2", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), under_tls("AUTH PLAIN AGFsaWNlAHMzY3JldA\r\nAUTH PLAIN\r\n%%%%\r\n"
                                                     "AUTH LOGIN\r\nYWxpY2U\r\nNOOP\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "501 5.5.2 Error: invalid base64 data", "334 ", "501 5.5.2",
                       "334 VXNlcm5hbWU6", "501 5.5.2", "250 2.0.0"});
    CHECK(t.events == std::vector<std::string>{"starttls"});
}

TEST_CASE("AUTH PLAIN with an authorization identity other than the login is refused 535 5.7.8", "[smtp_session]") {
    // "bob\0alice\0s3cret": alice's password, to act as bob.
    const Transcript t = run(smtp_setup(), under_tls("AUTH PLAIN Ym9iAGFsaWNlAHMzY3JldA==\r\n"
                                                     "AUTH PLAIN YWxpY2UAYWxpY2UAczNjcmV0\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "535 5.7.8", "235 2.7.0"});
    // The proxy attempt never reached the password check; "alice\0alice\0..." did.
    CHECK(t.events == std::vector<std::string>{"starttls", "check alice s3cret"});
    CHECK(t.auth_user == "alice");
}

TEST_CASE("AUTH LOGIN asks Username: then Password: and checks the pair", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), under_tls("AUTH LOGIN\r\nYWxpY2U=\r\nczNjcmV0\r\n"));
    CHECK_THAT(t.out, Catch::EndsWith("\r\n334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"));
    CHECK(t.events == std::vector<std::string>{"starttls", "check alice s3cret"});
    CHECK(t.auth_user == "alice");
}

TEST_CASE("AUTH LOGIN with an initial response asks only Password:", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), under_tls("auth login YWxpY2U=\r\nczNjcmV0\r\n"));
    CHECK_THAT(t.out, Catch::EndsWith("\r\n250 DSN\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"));
    CHECK(t.events == std::vector<std::string>{"starttls", "check alice s3cret"});
}

TEST_CASE("A line inside the AUTH exchange is a response, never a command", "[smtp_session]") {
    // "QUIT" and "RSET" are four base64 characters each: they decode, QUIT to no
    // user and password, RSET to a user name of three odd bytes.
    const Transcript t = run(smtp_setup(), under_tls("AUTH PLAIN\r\nQUIT\r\nAUTH LOGIN\r\nRSET\r\n*\r\nNOOP\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "334 ", "535 5.7.8", "334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6",
                       "501 5.7.0", "250 2.0.0"});
    CHECK_FALSE(t.closed);
    CHECK(t.events == std::vector<std::string>{"starttls"});
}

TEST_CASE("An unknown mechanism is 504 5.5.4 and AUTH without one 501 5.5.4", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), under_tls("AUTH CRAM-MD5\r\nAUTH\r\nNOOP\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "504 5.5.4", "501 5.5.4", "250 2.0.0"});
}

TEST_CASE("After AUTH the transaction is ESMTPSA and Received: names the login and the cipher", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), under_tls("AUTH PLAIN " + plain_alice + "\r\n" + from + rcpt_bob + data));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "235 2.7.0", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0"});
    REQUIRE(t.opened.size() == 1);
    CHECK(t.opened[0].protocol == "ESMTPSA");
    CHECK(t.opened[0].auth_user == "alice");
    CHECK(t.opened[0].tls.cipher == "TLS_AES_256_GCM_SHA384");
    CHECK(t.opened[0].helo == "client.example");
    REQUIRE(t.messages.size() == 1);
    CHECK(t.messages[0] ==
          "Received: from client.example (mail.client.example [192.0.2.7])\n"
          "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n"
          "\t(Authenticated sender: alice)\n"
          "\tby mx.example.org (mailroom) with ESMTPSA id 7QvK2m\n"
          "\tfor <bob@example.org>; " + mail::rfc5322_date(fixed_now) + "\nSubject: hi\n\nHello.\n");
}

TEST_CASE("A second AUTH after a successful one is refused 503 5.5.1", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), under_tls("AUTH PLAIN " + plain_alice + "\r\n" +
                                                     "AUTH PLAIN AGJvYgBodW50ZXIy\r\nNOOP\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "235 2.7.0", "503 5.5.1 Error: already authenticated",
                       "250 2.0.0"});
    CHECK(t.events == std::vector<std::string>{"starttls", "check alice s3cret"});
    CHECK(t.auth_user == "alice");
}

TEST_CASE("AUTH in a transaction is refused 503 5.5.1, and before EHLO too", "[smtp_session]") {
    Setup setup = smtp_setup();
    const Transcript t = run(setup, {ehlo + starttls, from + ehlo + from + "AUTH PLAIN " + plain_alice + "\r\nNOOP\r\n"});
    // The first MAIL: no EHLO under TLS yet.
    expect_replies(t, {ehlo_ok, "220 2.0.0", "503 5.5.1", ehlo_ok, "250 2.1.0",
                       "503 5.5.1 Error: MAIL transaction in progress", "250 2.0.0"});
    const Transcript fresh = run(setup, {ehlo + starttls, "AUTH PLAIN " + plain_alice + "\r\n"});
    expect_replies(fresh, {ehlo_ok, "220 2.0.0", "503 5.5.1 Error: send EHLO first"});
    CHECK(fresh.events == std::vector<std::string>{"starttls"});
}

TEST_CASE("A wrong password is 535 5.7.8 and the third failure also 421 and the session closes", "[smtp_session]") {
    const std::string wrong = "AUTH PLAIN AGFsaWNlAHdyb25n\r\n";  // "\0alice\0wrong"
    const Transcript t = run(smtp_setup(), under_tls(wrong + wrong + "AUTH LOGIN\r\nYWxpY2U=\r\nd3Jvbmc=\r\n" +
                                                     "AUTH PLAIN " + plain_alice + "\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "535 5.7.8 Error: authentication failed", "535 5.7.8",
                       "334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "535 5.7.8", "421 4.7.0"});
    CHECK(t.closed);
    CHECK(t.auth_failures == 3);
    CHECK(t.auth_user.empty());
    // The right password after the third failure was never checked.
    CHECK(t.events == std::vector<std::string>{"starttls", "check alice wrong", "check alice wrong",
                                               "check alice wrong"});
}

TEST_CASE("Two failures then the right password is accepted", "[smtp_session]") {
    const std::string wrong = "AUTH PLAIN AGFsaWNlAHdyb25n\r\n";
    const Transcript t = run(smtp_setup(), under_tls(wrong + wrong + "AUTH PLAIN " + plain_alice + "\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "535 5.7.8", "535 5.7.8", "235 2.7.0"});
    CHECK(t.auth_failures == 2);
    CHECK(t.auth_user == "alice");
}

TEST_CASE("A password check that cannot be made is 454 4.7.0 and not counted as a failure", "[smtp_session]") {
    Setup setup = smtp_setup();
    setup.passwords_down = true;
    const std::string auth = "AUTH PLAIN " + plain_alice + "\r\n";
    const Transcript t = run(setup, under_tls(auth + auth + auth + auth + "NOOP\r\n"));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "454 4.7.0 Temporary authentication failure", "454 4.7.0",
                       "454 4.7.0", "454 4.7.0", "250 2.0.0"});
    CHECK_FALSE(t.closed);
    CHECK(t.auth_failures == 0);
    CHECK(t.auth_user.empty());
}

TEST_CASE("Commands pipelined after AUTH wait for its verdict", "[smtp_session]") {
    Setup setup = smtp_setup();
    setup.settings.auth_required = true;
    const Transcript t = run(setup, under_tls("AUTH PLAIN " + plain_alice + "\r\n" + from + rcpt_bob));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "235 2.7.0", "250 2.1.0", "250 2.1.5"});
    CHECK(t.events == std::vector<std::string>{"starttls", "check alice s3cret", "open <alice@example.org>",
                                               "rcpt <bob@example.org>"});
}

TEST_CASE("An overlong AUTH response ends the exchange with a 500 and the session goes on", "[smtp_session]") {
    // An overlong response: RFC 4954 4 and 6 name 500 5.5.6 for it (the session's own
    // comment cites that); the session goes on.
    const std::string overlong = std::string(5000, 'A') + "\r\n";
    const Transcript t = run(smtp_setup(), under_tls("AUTH PLAIN\r\n" + overlong + "NOOP\r\n"));
    const auto replies = replies_of(t.out);
    REQUIRE(replies.size() == 6);
    CHECK_THAT(replies[4], Catch::StartsWith("500 5.5."));
    CHECK_THAT(replies[5], Catch::StartsWith("250 2.0.0"));
    CHECK(t.events == std::vector<std::string>{"starttls"});
}

TEST_CASE("An overlong AUTH response is answered 500 5.5.6 as RFC 4954 names it", "[smtp_session]") {
    // Seen failing when the session answered 500 5.5.2 there (RFC 4954 6: 5.5.6).
    const Transcript t = run(smtp_setup(), under_tls("AUTH LOGIN\r\n" + std::string(5000, 'A') + "\r\nNOOP\r\n"));
    const auto replies = replies_of(t.out);
    REQUIRE(replies.size() == 6);
    CHECK_THAT(replies[4], Catch::StartsWith("500 5.5.6"));
}

// ---- submission

TEST_CASE("Submission refuses MAIL before AUTH with 530 5.7.0 and takes it after", "[smtp_session]") {
    Setup setup = smtp_setup();
    setup.settings.auth_required = true;
    const Transcript t = run(setup, under_tls(from + "AUTH PLAIN " + plain_alice + "\r\n" + from));
    expect_replies(t, {ehlo_ok, "220 2.0.0", ehlo_ok, "530 5.7.0 Authentication required", "235 2.7.0", "250 2.1.0"});
    CHECK(t.events == std::vector<std::string>{"starttls", "check alice s3cret", "open <alice@example.org>"});
    REQUIRE(t.opened.size() == 1);
    CHECK(t.opened[0].auth_user == "alice");

    SECTION("in the clear too, and 530 is counted as an error") {
        setup.settings.error_limit = 2;
        const Transcript clear = run(setup, ehlo + from + from + "NOOP\r\n");
        expect_replies(clear, {ehlo_ok, "530 5.7.0", "530 5.7.0", "421 4.7.0"});
        CHECK(clear.closed);
        CHECK(clear.events.empty());
    }
    SECTION("a login that failed does not open the door") {
        const Transcript failed = run(setup, under_tls("AUTH PLAIN AGFsaWNlAHdyb25n\r\n" + from));
        expect_replies(failed, {ehlo_ok, "220 2.0.0", ehlo_ok, "535 5.7.8", "530 5.7.0"});
    }
}

// ---- the Gatekeeper

TEST_CASE("A client the gatekeeper refuses at connect gets its refusal as the greeting and the session closes",
          "[smtp_session]") {
    Setup setup = smtp_setup();
    use_gate(setup, GatePlan{Refusal{554, Status::perm("5.7.1", "mail.client.example[192.0.2.7]: go away")}});
    const Transcript t = run(setup, ehlo + from);
    CHECK(t.greeting == "554 5.7.1 mail.client.example[192.0.2.7]: go away\r\n");
    CHECK(t.closed);
    CHECK(t.out.empty());
    CHECK(t.consumed == 0);
    CHECK(t.gate == std::vector<std::string>{"connect mail.client.example[192.0.2.7]"});
    CHECK(t.events.empty());

    SECTION("a deferred client hears 421") {
        use_gate(setup, GatePlan{Refusal{421, Status::temp("4.7.1", "try later")}});
        const Transcript deferred = run(setup, ehlo);
        CHECK(deferred.greeting == "421 4.7.1 try later\r\n");
        CHECK(deferred.closed);
    }
}

TEST_CASE("A client the gatekeeper accepts is greeted 220 and asked about once", "[smtp_session]") {
    Setup setup = smtp_setup();
    use_gate(setup, GatePlan{});
    const Transcript t = run(setup, ehlo);
    CHECK(t.greeting == "220 mx.example.org ESMTP mailroom\r\n");
    CHECK(t.gate.size() == 2);
    CHECK(t.gate[0] == "connect mail.client.example[192.0.2.7]");
}

TEST_CASE("HELO, sender and recipient refusals are answered with their code and counted as errors",
          "[smtp_session]") {
    Setup setup = smtp_setup();
    GatePlan plan;
    plan.helo.emplace("bad.example", Refusal{554, Status::perm("5.7.1", "<bad.example>: Helo command rejected")});
    plan.sender.emplace("<spam@evil.example>", Refusal{450, Status::temp("4.7.1", "<spam@evil.example>: later")});
    plan.recipient.emplace("<x@far.example>", Refusal{554, Status::perm("5.7.1", "<x@far.example>: Relay access denied")});
    use_gate(setup, plan);
    const std::string script = "EHLO bad.example\r\n" + from + ehlo + "MAIL FROM:<spam@evil.example>\r\n" + from +
                               "RCPT TO:<x@far.example>\r\n" + rcpt_bob + data;
    const Transcript t = run(setup, script);
    expect_replies(t, {"554 5.7.1 <bad.example>: Helo command rejected", "503 5.5.1", ehlo_ok,
                       "450 4.7.1 <spam@evil.example>: later", "250 2.1.0", "554 5.7.1 <x@far.example>: Relay access denied",
                       "250 2.1.5", "354", "250 2.0.0"});
    // The door never heard of what the gatekeeper refused.
    CHECK(t.events == std::vector<std::string>{"open <alice@example.org>", "rcpt <bob@example.org>", "begin", "write",
                                               "commit"});
    REQUIRE(t.messages.size() == 1);

    SECTION("at error_limit the refusals end the session with 421") {
        setup.settings.error_limit = 3;
        const Transcript limited = run(setup, script);
        expect_replies(limited, {"554 5.7.1", "503 5.5.1", ehlo_ok, "450 4.7.1", "421 4.7.0"});
        CHECK(limited.closed);
        CHECK(limited.events.empty());
    }
    SECTION("each kind of refusal counts: HELO, sender and recipient") {
        setup.settings.error_limit = 1;
        const Transcript helo = run(setup, "EHLO bad.example\r\n" + ehlo);
        expect_replies(helo, {"554 5.7.1", "421 4.7.0"});
        CHECK(helo.closed);
        const Transcript mail = run(setup, ehlo + "MAIL FROM:<spam@evil.example>\r\n" + from);
        expect_replies(mail, {ehlo_ok, "450 4.7.1", "421 4.7.0"});
        CHECK(mail.closed);
        setup.settings.error_limit = 2;
        const Transcript rcpt = run(setup, ehlo + from + "RCPT TO:<x@far.example>\r\nRCPT TO:<x@far.example>\r\n" +
                                               rcpt_bob);
        expect_replies(rcpt, {ehlo_ok, "250 2.1.0", "554 5.7.1", "554 5.7.1", "421 4.7.0"});
        CHECK(rcpt.closed);
        // The open transaction is dropped.
        CHECK(rcpt.events == std::vector<std::string>{"open <alice@example.org>", "abort"});
    }
    SECTION("with only refused recipients DATA is 554 5.5.1") {
        const Transcript none = run(setup, ehlo + from + "RCPT TO:<x@far.example>\r\nDATA\r\n");
        expect_replies(none, {ehlo_ok, "250 2.1.0", "554 5.7.1", "554 5.5.1 Error: no valid recipients"});
    }
}

TEST_CASE("A refused HELO keeps the earlier name and transaction", "[smtp_session]") {
    Setup setup = smtp_setup();
    GatePlan plan;
    plan.helo.emplace("bad.example", Refusal{554, Status::perm("5.7.1", "no")});
    use_gate(setup, plan);
    const Transcript t = run(setup, ehlo + from + "EHLO bad.example\r\n" + rcpt_bob + data);
    expect_replies(t, {ehlo_ok, "250 2.1.0", "554 5.7.1", "250 2.1.5", "354", "250 2.0.0"});
    REQUIRE(t.messages.size() == 1);
    CHECK_THAT(t.messages[0], Catch::StartsWith("Received: from client.example ("));
}

TEST_CASE("The gatekeeper is told the client, the HELO name, the login and relay_client", "[smtp_session]") {
    Setup setup = smtp_setup();
    use_gate(setup, GatePlan{std::nullopt, true});
    const Transcript t = run(setup, {ehlo + from + rcpt_bob + "RSET\r\n" + starttls,
                                     ehlo + "AUTH PLAIN " + plain_alice + "\r\n" + from + rcpt_bob});
    CHECK(t.gate == std::vector<std::string>{
                        "connect mail.client.example[192.0.2.7]",
                        "helo client.example [client=mail.client.example helo= auth= relay=yes]",
                        "sender <alice@example.org> [client=mail.client.example helo=client.example auth= relay=yes]",
                        "recipient <bob@example.org> of <alice@example.org> [client=mail.client.example "
                        "helo=client.example auth= relay=yes]",
                        // Under TLS the earlier HELO name is forgotten.
                        "helo client.example [client=mail.client.example helo= auth= relay=yes]",
                        "sender <alice@example.org> [client=mail.client.example helo=client.example auth=alice "
                        "relay=yes]",
                        "recipient <bob@example.org> of <alice@example.org> [client=mail.client.example "
                        "helo=client.example auth=alice relay=yes]",
                    });

    SECTION("a client connect() does not let relay is told so at each command") {
        use_gate(setup, GatePlan{});
        const Transcript other = run(setup, ehlo + from + rcpt_bob);
        REQUIRE(other.gate.size() == 4);
        for (size_t i = 1; i < 4; ++i) CHECK_THAT(other.gate[i], Catch::Contains(" relay=no]"));
    }
}

TEST_CASE("The gatekeeper is told the protocol as RFC 3848 names it", "[smtp_session]") {
    // Seen failing (built with -O1) when SessionFacts::protocol was a string_view of
    // the temporary protocol_name() returns: gatekeepers read dead stack. A copy now.
    Setup setup = smtp_setup();
    GatePlan plan;
    plan.record_protocol = true;
    use_gate(setup, plan);
    const Transcript t = drive(setup, {ehlo + from + rcpt_bob + "RSET\r\n" + starttls,
                                       ehlo + "AUTH PLAIN " + plain_alice + "\r\n" + from + rcpt_bob},
                               0);
    REQUIRE(t.gate.size() == 7);
    CHECK_THAT(t.gate[1], Catch::EndsWith(" proto=SMTP]"));
    CHECK_THAT(t.gate[2], Catch::EndsWith(" proto=ESMTP]"));
    CHECK_THAT(t.gate[3], Catch::EndsWith(" proto=ESMTP]"));
    CHECK_THAT(t.gate[5], Catch::EndsWith(" proto=ESMTPSA]"));
    CHECK_THAT(t.gate[6], Catch::EndsWith(" proto=ESMTPSA]"));
}

TEST_CASE("Without a gatekeeper every client, sender and recipient the door takes is accepted", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), ehlo + "MAIL FROM:<anyone@far.example>\r\nRCPT TO:<x@far.example>\r\n");
    expect_replies(t, {ehlo_ok, "250 2.1.0", "250 2.1.5"});
}

// ---- ETRN

TEST_CASE("ETRN is 502 5.5.1 when settings.etrn is false and the door is not asked", "[smtp_session]") {
    const Transcript t = run(smtp_setup(), ehlo + "ETRN example.com\r\nNOOP\r\n");
    expect_replies(t, {ehlo_ok, "502 5.5.1", "250 2.0.0"});
    CHECK(t.events.empty());
}

TEST_CASE("ETRN with a door that flushes is answered 250 2.0.0 Queuing started", "[smtp_session]") {
    Setup setup = smtp_setup();
    setup.settings.etrn = true;
    setup.door.flush = Status::ok();
    const Transcript t = run(setup, ehlo + "ETRN example.com\r\nETRN @Sub.Example.COM\r\n");
    expect_replies(t, {ehlo_ok, "250 2.0.0 Queuing started", "250 2.0.0 Queuing started"});
    CHECK(t.events == std::vector<std::string>{"flush example.com", "flush Sub.Example.COM"});
}

TEST_CASE("ETRN with a bad domain is 501 5.5.4 and the door is not asked", "[smtp_session]") {
    Setup setup = smtp_setup();
    setup.settings.etrn = true;
    setup.door.flush = Status::ok();
    const Transcript t = run(setup, ehlo + "ETRN\r\nETRN #queue\r\nETRN .example.com\r\nETRN example.com.\r\n"
                                           "ETRN exa_mple.com\r\nETRN @\r\nETRN " + std::string(254, 'a') + "\r\n"
                                           "ETRN example.com extra\r\nNOOP\r\n");
    expect_replies(t, {ehlo_ok, "501 5.5.4", "501 5.5.4", "501 5.5.4", "501 5.5.4", "501 5.5.4", "501 5.5.4",
                       "501 5.5.4", "501 5.5.4", "250 2.0.0"});
    CHECK(t.events.empty());
}

TEST_CASE("ETRN before EHLO or in a transaction is 503 5.5.1, and a door without a queue makes it 502",
          "[smtp_session]") {
    Setup setup = smtp_setup();
    setup.settings.etrn = true;
    setup.door.flush = Status::ok();
    const Transcript t = run(setup, "ETRN example.com\r\n" + ehlo + from + "ETRN example.com\r\n");
    expect_replies(t, {"503 5.5.1", ehlo_ok, "250 2.1.0", "503 5.5.1"});
    CHECK(t.events == std::vector<std::string>{"open <alice@example.org>"});

    setup.door.flush = std::nullopt;
    expect_replies(run(setup, ehlo + "ETRN example.com\r\n"), {ehlo_ok, "502 5.5.1"});
    setup.door.flush = Status::temp("4.3.0", "queue busy");
    expect_replies(run(setup, ehlo + "ETRN example.com\r\n"), {ehlo_ok, "451 4.3.0 queue busy"});

    // Door's own flush_domain: no queue to run.
    PlainDoor plain;
    core::FixedClock clock(fixed_now);
    Session session(setup.settings, ClientInfo{}, plain, clock);
    std::string out;
    session.greeting();
    session.feed(ehlo + "ETRN example.com\r\n", out);
    CHECK_THAT(out, Catch::EndsWith("\r\n502 5.5.1 Error: command not implemented\r\n"));
}

TEST_CASE("LMTP knows no AUTH and no ETRN", "[smtp_session]") {
    Setup setup = smtp_setup();
    setup.settings.dialect = Dialect::lmtp;
    setup.settings.etrn = true;
    setup.implicit_tls = true;
    setup.door.flush = Status::ok();
    const Transcript t = run(setup, "LHLO client.example\r\nAUTH PLAIN " + plain_alice + "\r\nETRN example.com\r\n");
    expect_replies(t, {ehlo_ok, "502 5.5.1", "502 5.5.1"});
    CHECK(t.events.empty());
}
