// The SMTP/LMTP session without I/O (SPEC 7; RFC 5321, 2033, 2920, 3030): what it
// answers to each command in each dialect, what it asks of its Door and when, where
// it stops reading — and that all of it is the same however the client's bytes are
// cut into reads (every script is run whole, one byte at a time, and in odd steps).
#include "smtp/session.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <ctime>
#include <functional>
#include <map>
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

// ---- the fake door

// What the fake door is told to do.
struct DoorPlan {
    std::map<std::string, Status> refused;  // recipient path → the door's answer
    bool fail_begin = false;                // begin_data cannot make its temporary file
    // A write that would take the text past this many bytes fails (ENOSPC), as a full
    // disk would, at whatever point of the data the limit falls.
    std::optional<size_t> write_limit;
    std::string id = "7QvK2m";
};

// Records what the session asks, as events; consecutive writes are one "write" event,
// because how many there are depends on the chunking, which the tests vary. Calls the
// Door contract does not allow are kept in `violations`, which every run checks.
class FakeDoor final : public Door {
public:
    explicit FakeDoor(DoorPlan plan) : plan_(std::move(plan)) {}

    Status open(const Transaction& transaction) override {
        if (open_) violations.push_back("open while a transaction is open");
        record("open " + transaction.mail.sender.path());
        open_ = true;
        return Status::ok("sender ok", "2.1.0");
    }

    Status add_recipient(const Transaction&, const RcptTo& rcpt) override {
        if (!open_ || in_data_) violations.push_back("add_recipient outside MAIL..DATA");
        const std::string path = rcpt.recipient.path();
        record("rcpt " + path);
        if (auto it = plan_.refused.find(path); it != plan_.refused.end()) return it->second;
        return Status::ok("recipient ok", "2.1.5");
    }

    core::Result<std::string> begin_data(const Transaction& transaction) override {
        if (!open_ || in_data_) violations.push_back("begin_data outside a transaction");
        if (transaction.recipients.empty()) violations.push_back("begin_data without a recipient");
        if (plan_.fail_begin) {
            record("begin failed");
            return core::unexpected_errno("mkstemp /var/spool/mailroom/tmp", EIO);
        }
        record("begin");
        in_data_ = true;
        text_.clear();
        return plan_.id;
    }

    core::Result<void> write(std::string_view text) override {
        if (!in_data_) violations.push_back("write outside begin_data..commit/abort");
        if (plan_.write_limit && text_.size() + text.size() > *plan_.write_limit) {
            record("write failed");
            return core::unexpected_errno("write tmp file", ENOSPC);
        }
        if (events.empty() || events.back() != "write") record("write");
        text_ += text;
        return {};
    }

    void abort() override {
        record("abort");
        open_ = false;
        in_data_ = false;
        text_.clear();
    }

    // The driver's side of Next::commit: the text so far is the message.
    void commit() {
        if (!in_data_) violations.push_back("commit without begin_data");
        record("commit");
        messages.push_back(text_);
        open_ = false;
        in_data_ = false;
        text_.clear();
    }

    std::vector<std::string> events;
    std::vector<std::string> messages;  // the text of each committed transaction
    std::vector<std::string> violations;
    size_t recipient_calls() const {
        size_t n = 0;
        for (const auto& e : events) n += e.rfind("rcpt ", 0) == 0;
        return n;
    }

private:
    void record(std::string event) { events.push_back(std::move(event)); }

    DoorPlan plan_;
    bool open_ = false;
    bool in_data_ = false;
    std::string text_;
};

// ---- the driver

struct Setup {
    SessionSettings settings;
    DoorPlan door;
    // The door's outcomes, commit by commit; past the list, every recipient is
    // delivered (one ok per LMTP recipient, one for SMTP).
    std::vector<std::vector<Status>> outcomes;
    ClientInfo client;
};

Setup setup_for(Dialect dialect) {
    Setup setup;
    setup.settings.dialect = dialect;
    setup.settings.hostname = host;
    setup.settings.size_limit = 1'000'000;
    return setup;
}

struct Transcript {
    std::string greeting;
    std::string out;                     // every reply after the greeting
    std::vector<std::string> door;       // the door's events
    std::vector<std::string> messages;   // committed texts
    std::vector<size_t> commit_offsets;  // input offset where each data ended
    size_t consumed = 0;
    bool closed = false;
    size_t held_recipients = 0;  // the session's transaction at the end
};

// Feeds `script` `step` bytes at a time the way lib/net's server does: unconsumed
// bytes wait for the next feed, Next::commit is answered with committed(), and
// nothing is fed after Next::close.
Transcript drive(const Setup& setup, std::string_view script, size_t step) {
    FakeDoor door(setup.door);
    core::FixedClock clock(fixed_now);
    Session session(setup.settings, setup.client, door, clock);
    Transcript t;
    t.greeting = session.greeting();
    std::string pending;
    size_t commits = 0;
    for (size_t at = 0; at < script.size() && !t.closed; at += step) {
        pending.append(script.substr(at, step));
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
                if (!view.empty()) FAIL("Next::read with bytes left");
                break;
            }
            t.commit_offsets.push_back(t.consumed);
            const auto& transaction = session.transaction();
            std::vector<Status> outcomes;
            if (commits < setup.outcomes.size()) {
                outcomes = setup.outcomes[commits];
            } else {
                const size_t n = setup.settings.dialect == Dialect::lmtp ? transaction.recipients.size() : 1;
                outcomes.assign(n, Status::ok());
            }
            ++commits;
            door.commit();
            session.committed(outcomes, t.out);
        }
        pending.erase(0, pending.size() - view.size());
    }
    if (t.closed) {
        // After Next::close nothing more is read or answered.
        const size_t before = t.out.size();
        const auto again = session.feed("NOOP\r\n", t.out);
        CHECK(again.consumed == 0);
        CHECK(again.next == Next::close);
        CHECK(t.out.size() == before);
    }
    CHECK(door.violations == std::vector<std::string>{});
    t.door = door.events;
    t.messages = door.messages;
    t.held_recipients = session.transaction().recipients.size();
    return t;
}

// Runs the script whole and in other chunkings, and requires the same transcript.
Transcript run(const Setup& setup, std::string_view script) {
    const Transcript whole = drive(setup, script, script.empty() ? 1 : script.size());
    for (size_t step : {size_t{1}, size_t{2}, size_t{7}}) {
        INFO("fed " << step << " bytes at a time");
        const Transcript other = drive(setup, script, step);
        CHECK(other.out == whole.out);
        CHECK(other.door == whole.door);
        CHECK(other.messages == whole.messages);
        CHECK(other.commit_offsets == whole.commit_offsets);
        CHECK(other.consumed == whole.consumed);
        CHECK(other.closed == whole.closed);
        CHECK(other.held_recipients == whole.held_recipients);
    }
    return whole;
}

// Each reply's last line ("250 text"; a multi-line reply's "250-" lines before it are
// folded into it), having checked that every line has the shape of a reply.
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
        REQUIRE((isdigit(static_cast<unsigned char>(line[1])) && isdigit(static_cast<unsigned char>(line[2]))));
        REQUIRE((line[3] == ' ' || line[3] == '-'));
        REQUIRE(line.find_first_of("\r\n") == std::string::npos);
        if (line[3] == ' ') replies.push_back(line);
        at = end + 2;
    }
    return replies;
}

// ---- the scenario table

const std::string hello = "HELLO client.example\r\n";  // LHLO for LMTP, EHLO for SMTP
const std::string hello_ok = "250 DSN";                // the last line of the LHLO/EHLO reply
const std::string from = "MAIL FROM:<alice@example.org>\r\n";
std::string rcpt(const std::string& who) { return "RCPT TO:<" + who + "@example.org>\r\n"; }
const std::string data = "DATA\r\nSubject: hi\r\n\r\nHello.\r\n.\r\n";

std::string in_dialect(std::string script, Dialect dialect) {
    const std::string verb = dialect == Dialect::lmtp ? "LHLO" : "EHLO";
    for (size_t at = script.find("HELLO"); at != std::string::npos; at = script.find("HELLO", at)) {
        script.replace(at, 5, verb);
    }
    return script;
}

enum class Only { both, lmtp, smtp };

struct Scenario {
    std::string sentence;
    Only only;
    std::string script;
    std::vector<std::string> replies;  // each reply after the greeting starts with this
    std::function<void(Setup&)> adjust = {};  // the settings and the door the row needs
    std::optional<std::vector<std::string>> door = std::nullopt;  // the door's events, when they matter
    bool closes = false;
};

const Status no_such_user = Status::perm("5.1.1", "no such user");
const Status mailbox_full = Status::temp("4.2.2", "mailbox full");

std::vector<Scenario> scenarios() {
    const std::string long_line = "NOOP " + std::string(5000, 'x') + "\r\n";
    const std::string long_rcpt = "RCPT TO:<a@example.org> ORCPT=rfc822;" + std::string(5000, 'x') + "\r\n";
    const std::string big_body = "DATA\r\n" + std::string(200, 'x') + "\r\n.\r\n";
    std::string thousand_lines = "DATA\r\n";
    for (int i = 0; i < 20; ++i) thousand_lines += std::string(50, 'y') + "\r\n";
    thousand_lines += ".\r\n";

    return {
        // greetings per dialect
        {"LMTP answers LHLO and refuses HELO and EHLO (RFC 2033 4.1)", Only::lmtp,
         "HELO client.example\r\nEHLO client.example\r\n" + from + hello + from,
         {"500 5.5.1", "500 5.5.1", "503 5.5.1", hello_ok, "250 2.1.0"}},
        {"SMTP answers HELO and EHLO and knows no LHLO", Only::smtp,
         "LHLO client.example\r\n" + from + "HELO client.example\r\n" + "EHLO client.example\r\n",
         {"500 5.5.1", "503 5.5.1", "250 mx.example.org", hello_ok}},
        {"A greeting without a host name is refused 501", Only::both, "HELLO\r\n", {"501 5.5.4"}},

        // the order of commands
        {"MAIL before the greeting is refused 503", Only::both, from + hello + from,
         {"503 5.5.1", hello_ok, "250 2.1.0"}, {}, std::vector<std::string>{"open <alice@example.org>"}},
        {"A second MAIL in a transaction is refused 503", Only::both, hello + from + from,
         {hello_ok, "250 2.1.0", "503 5.5.1"}, {}, std::vector<std::string>{"open <alice@example.org>"}},
        {"RCPT before MAIL is refused 503 and the door is not asked", Only::both, hello + rcpt("bob"),
         {hello_ok, "503 5.5.1"}, {}, std::vector<std::string>{}},
        {"DATA before RCPT is refused 503", Only::both, hello + "DATA\r\n" + from + "DATA\r\n",
         {hello_ok, "503 5.5.1", "250 2.1.0", "503 5.5.1"}},
        {"DATA after only refused recipients is refused 554 in SMTP", Only::smtp,
         hello + from + rcpt("nobody") + "DATA\r\n" + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "550 5.1.1", "554 5.5.1", "250 2.0.0"},
         [](Setup& s) { s.door.refused.emplace("<nobody@example.org>", no_such_user); },
         std::vector<std::string>{"open <alice@example.org>", "rcpt <nobody@example.org>"}},
        {"DATA after only refused recipients is refused 503 in LMTP (RFC 2033 4.2)", Only::lmtp,
         hello + from + rcpt("nobody") + "DATA\r\n" + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "550 5.1.1", "503 5.5.1", "250 2.0.0"},
         [](Setup& s) { s.door.refused.emplace("<nobody@example.org>", no_such_user); },
         std::vector<std::string>{"open <alice@example.org>", "rcpt <nobody@example.org>"}},

        // recipients
        {"A recipient the door refuses is answered with the door's code", Only::both,
         hello + from + rcpt("nobody") + rcpt("full") + rcpt("busy") + rcpt("bob"),
         {hello_ok, "250 2.1.0", "550 5.1.1 no such user", "452 4.2.2 mailbox full", "451 4.3.0 try later",
          "250 2.1.5"},
         [](Setup& s) {
             s.door.refused.emplace("<nobody@example.org>", no_such_user);
             s.door.refused.emplace("<full@example.org>", mailbox_full);
             s.door.refused.emplace("<busy@example.org>", Status::temp("4.3.0", "try later"));
         }},
        {"Recipients past max_recipients are answered 452 4.5.3, not counted as errors, and not asked of the door",
         Only::both, hello + from + rcpt("a") + rcpt("b") + rcpt("c") + rcpt("d") + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.1.5", "452 4.5.3", "452 4.5.3", "250 2.0.0"},
         [](Setup& s) {
             s.settings.max_recipients = 2;
             s.settings.error_limit = 1;  // one counted refusal would end the session
         },
         std::vector<std::string>{"open <alice@example.org>", "rcpt <a@example.org>", "rcpt <b@example.org>"}},
        {"A MAIL whose SIZE is over message_size_limit is refused 552", Only::both,
         hello + "MAIL FROM:<alice@example.org> SIZE=1001\r\n" + "MAIL FROM:<alice@example.org> SIZE=1000\r\n",
         {hello_ok, "552 5.3.4", "250 2.1.0"}, [](Setup& s) { s.settings.size_limit = 1000; },
         std::vector<std::string>{"open <alice@example.org>"}},

        // the data and its replies
        {"LMTP replies once per accepted recipient after the data, in order, with the door's outcomes",
         Only::lmtp, hello + from + rcpt("a") + rcpt("nobody") + rcpt("b") + rcpt("c") + data + "QUIT\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "250 2.1.5", "354",
          "250 2.0.0 <a@example.org> delivered", "452 4.2.2 <b@example.org> mailbox full",
          "550 5.1.1 <c@example.org> no such user", "221 2.0.0"},
         [](Setup& s) {
             s.door.refused.emplace("<nobody@example.org>", no_such_user);
             s.outcomes = {{Status::ok(), mailbox_full, no_such_user}};
         },
         std::vector<std::string>{"open <alice@example.org>", "rcpt <a@example.org>", "rcpt <nobody@example.org>",
                                  "rcpt <b@example.org>", "rcpt <c@example.org>", "begin", "write", "commit"},
         true},
        {"SMTP replies once after the data, with the door's outcome", Only::smtp,
         hello + from + rcpt("a") + rcpt("b") + data + "QUIT\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "451 4.3.0 queue file write error", "221 2.0.0"},
         [](Setup& s) { s.outcomes = {{Status::temp("4.3.0", "queue file write error")}}; }, std::nullopt, true},
        {"A bare LF in the data under reject is refused 5.5.2 once per accepted LMTP recipient and the door aborts",
         Only::lmtp, hello + from + rcpt("a") + rcpt("b") + "DATA\r\nline\nQUIT\r\n.\r\n" + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "550 5.5.2", "550 5.5.2", "250 2.0.0"}, {},
         std::vector<std::string>{"open <alice@example.org>", "rcpt <a@example.org>", "rcpt <b@example.org>", "begin",
                                  "write", "abort"}},
        {"A bare LF in the data under reject is refused 5.5.2 once in SMTP and the door aborts", Only::smtp,
         hello + from + rcpt("a") + rcpt("b") + "DATA\r\nline\nQUIT\r\n.\r\n" + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "550 5.5.2", "250 2.0.0"}, {},
         std::vector<std::string>{"open <alice@example.org>", "rcpt <a@example.org>", "rcpt <b@example.org>", "begin",
                                  "write", "abort"}},
        {"Under normalize a bare LF in the data is a line end and the message is taken", Only::both,
         "HELLO client.example\n" + from + rcpt("a") + "DATA\r\nline\nmore\r\n.\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "354", "250 2.0.0"},
         [](Setup& s) { s.settings.bare_newline = BareNewline::normalize; }},
        {"A message over message_size_limit is refused 552 5.3.4 per LMTP recipient", Only::lmtp,
         hello + from + rcpt("a") + rcpt("b") + big_body + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "552 5.3.4", "552 5.3.4", "250 2.0.0"},
         [](Setup& s) { s.settings.size_limit = 100; }},
        {"When begin_data fails the data is still read and then refused 451 per LMTP recipient", Only::lmtp,
         hello + from + rcpt("a") + rcpt("b") + data + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "451 4.3.0", "451 4.3.0", "250 2.0.0"},
         [](Setup& s) { s.door.fail_begin = true; },
         std::vector<std::string>{"open <alice@example.org>", "rcpt <a@example.org>", "rcpt <b@example.org>",
                                  "begin failed", "abort"}},
        {"When begin_data fails the data is still read and then refused 451 once in SMTP", Only::smtp,
         hello + from + rcpt("a") + rcpt("b") + data + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "451 4.3.0", "250 2.0.0"},
         [](Setup& s) { s.door.fail_begin = true; }},
        {"A write the door cannot do refuses the message with its status, and the door aborts", Only::lmtp,
         hello + from + rcpt("a") + rcpt("b") + thousand_lines + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "452 4.3.1", "452 4.3.1", "250 2.0.0"},
         [](Setup& s) { s.door.write_limit = 400; },
         std::vector<std::string>{"open <alice@example.org>", "rcpt <a@example.org>", "rcpt <b@example.org>", "begin",
                                  "write", "write failed", "abort"}},

        // BDAT
        {"BDAT chunks are each answered with their size and BDAT LAST commits", Only::both,
         hello + from + rcpt("a") + "BDAT 5\r\nabc\r\n" + "BDAT 0\r\n" + "BDAT 5 LAST\r\ndef\r\n" + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.0.0 5 octets received", "250 2.0.0 0 octets received",
          "250 2.0.0", "250 2.0.0"},
         {},
         std::vector<std::string>{"open <alice@example.org>", "rcpt <a@example.org>", "begin", "write", "commit"}},
        {"BDAT without a recipient is refused 503 and its octets are still read", Only::both,
         hello + "BDAT 12\r\nQUIT\r\nQUIT\r\n" + from + "BDAT 6 LAST\r\nQUIT\r\n" + "NOOP\r\n",
         {hello_ok, "503 5.5.1", "250 2.1.0", "503 5.5.1", "250 2.0.0"}, {},
         std::vector<std::string>{"open <alice@example.org>"}},
        {"BDAT before the greeting is refused 503 and its octets are still read", Only::both,
         "BDAT 6\r\nQUIT\r\n" + hello,
         {"503 5.5.1", hello_ok}},
        {"BDAT after only refused recipients is refused 554 in SMTP and its octets are still read", Only::smtp,
         hello + from + rcpt("nobody") + "BDAT 6 LAST\r\nQUIT\r\n" + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "550 5.1.1", "554 5.5.1", "250 2.0.0"},
         [](Setup& s) { s.door.refused.emplace("<nobody@example.org>", no_such_user); }},
        {"BDAT after only refused recipients is refused 503 in LMTP and its octets are still read", Only::lmtp,
         hello + from + rcpt("nobody") + "BDAT 6 LAST\r\nQUIT\r\n" + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "550 5.1.1", "503 5.5.1", "250 2.0.0"},
         [](Setup& s) { s.door.refused.emplace("<nobody@example.org>", no_such_user); }},
        {"DATA after BDAT is refused 503", Only::both,
         hello + from + rcpt("a") + "BDAT 3\r\nabc" + "DATA\r\n" + "BDAT 0 LAST\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.0.0 3 octets received", "503 5.5.1", "250 2.0.0"}},
        {"RCPT after BDAT is refused 503", Only::lmtp,
         hello + from + rcpt("a") + "BDAT 3\r\nabc" + rcpt("b") + "BDAT 0 LAST\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.0.0 3 octets received", "503 5.5.1",
          "250 2.0.0 <a@example.org>"},
         {},
         std::vector<std::string>{"open <alice@example.org>", "rcpt <a@example.org>", "begin", "write", "commit"}},
        {"BDAT with a bad size is answered 421 and the session closes", Only::both,
         hello + from + rcpt("a") + "BDAT 12x\r\n" + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "501 5.5.4", "421 4.7.0"}, {},
         std::vector<std::string>{"open <alice@example.org>", "rcpt <a@example.org>", "abort"}, true},
        {"BDAT without a size is answered 421 and the session closes", Only::both, hello + "BDAT\r\n" + "NOOP\r\n",
         {hello_ok, "501 5.5.4", "421 4.7.0"}, {}, std::vector<std::string>{}, true},
        {"BDAT with a 20-digit size is answered 421 and the session closes", Only::both,
         hello + "BDAT 99999999999999999999 LAST\r\n" + "NOOP\r\n", {hello_ok, "501 5.5.4", "421 4.7.0"}, {},
         std::nullopt, true},

        // other verbs
        {"RSET aborts the transaction", Only::both, hello + from + rcpt("a") + "RSET\r\n" + "DATA\r\n",
         {hello_ok, "250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1"}, {},
         std::vector<std::string>{"open <alice@example.org>", "rcpt <a@example.org>", "abort"}},
        {"QUIT is answered 221 and ends the session, aborting a transaction", Only::both,
         hello + from + "QUIT\r\n" + "NOOP\r\n", {hello_ok, "250 2.1.0", "221 2.0.0"}, {},
         std::vector<std::string>{"open <alice@example.org>", "abort"}, true},
        {"VRFY is answered 252, HELP 214, EXPN 502 and an unknown command 500 5.5.1", Only::both,
         hello + "VRFY bob\r\n" + "HELP\r\n" + "EXPN staff\r\n" + "FROB\r\n" + "NOOP\r\n",
         {hello_ok, "252 2.5.0", "214 2.0.0", "502 5.5.1", "500 5.5.1", "250 2.0.0"}},
        {"After error_limit refusals the session answers 421 4.7.0 and closes", Only::both,
         hello + from + "FROB\r\nFROB\r\nFROB\r\n" + "NOOP\r\n",
         {hello_ok, "250 2.1.0", "500 5.5.1", "500 5.5.1", "500 5.5.1", "421 4.7.0"},
         [](Setup& s) { s.settings.error_limit = 3; },
         std::vector<std::string>{"open <alice@example.org>", "abort"}, true},

        // command lines
        {"A command line over its limit is refused 500 5.5.2 and the next command is read", Only::both,
         hello + long_line + "NOOP\r\n", {hello_ok, "500 5.5.2", "250 2.0.0"}},
        {"A RCPT line over 4096 octets is refused 500 5.5.2 and the next RCPT is read", Only::both,
         hello + from + long_rcpt + rcpt("b"), {hello_ok, "250 2.1.0", "500 5.5.2", "250 2.1.5"}, {},
         std::vector<std::string>{"open <alice@example.org>", "rcpt <b@example.org>"}},
        {"A bare LF in a command line under reject is refused 500 5.5.2 with what follows it", Only::both,
         hello + "NOOP\nQUIT\r\n" + "NOOP\r\n", {hello_ok, "500 5.5.2", "250 2.0.0"}},
        {"A bare CR in a command line is refused 500 5.5.2 with what follows it", Only::both,
         hello + "NOOP\rQUIT\r\n" + "NOOP\r\n", {hello_ok, "500 5.5.2", "250 2.0.0"}},
        {"Under normalize a bare LF ends a command line", Only::both,
         "HELLO client.example\n" + std::string("NOOP\n") + "QUIT\n" + "NOOP\n", {hello_ok, "250 2.0.0", "221 2.0.0"},
         [](Setup& s) { s.settings.bare_newline = BareNewline::normalize; }, std::nullopt, true},
        {"An empty command line is refused 500 5.5.2", Only::both, hello + "\r\n" + "NOOP\r\n",
         {hello_ok, "500 5.5.2", "250 2.0.0"}},
    };
}

void play(const Scenario& scenario, Dialect dialect) {
    Setup setup = setup_for(dialect);
    if (scenario.adjust) scenario.adjust(setup);
    const std::string script = in_dialect(scenario.script, dialect);
    const Transcript t = run(setup, script);
    const auto replies = replies_of(t.out);
    INFO("replies:\n" << t.out);
    REQUIRE(replies.size() == scenario.replies.size());
    for (size_t i = 0; i < replies.size(); ++i) {
        CHECK_THAT(replies[i], Catch::StartsWith(scenario.replies[i]));
    }
    if (scenario.door) CHECK(t.door == *scenario.door);
    CHECK(t.closed == scenario.closes);
    // A session still open has read every byte it was given.
    if (!t.closed) CHECK(t.consumed == script.size());
}

}  // namespace

TEST_CASE("The session answers each command as SPEC 7 says, in both dialects and any chunking", "[session]") {
    for (const auto& scenario : scenarios()) {
        for (Dialect dialect : {Dialect::lmtp, Dialect::smtp}) {
            if (scenario.only == Only::lmtp && dialect != Dialect::lmtp) continue;
            if (scenario.only == Only::smtp && dialect != Dialect::smtp) continue;
            SECTION(scenario.sentence + (dialect == Dialect::lmtp ? " (LMTP)" : " (SMTP)")) {
                play(scenario, dialect);
            }
        }
    }
}

TEST_CASE("The greeting names the host and the dialect", "[session]") {
    FakeDoor door{DoorPlan{}};
    core::FixedClock clock(fixed_now);
    Session lmtp(setup_for(Dialect::lmtp).settings, ClientInfo{}, door, clock);
    Session smtp(setup_for(Dialect::smtp).settings, ClientInfo{}, door, clock);
    CHECK(lmtp.greeting() == "220 mx.example.org LMTP mailroom\r\n");
    CHECK(smtp.greeting() == "220 mx.example.org ESMTP mailroom\r\n");
}

TEST_CASE("EHLO and LHLO list PIPELINING, SIZE, ENHANCEDSTATUSCODES, 8BITMIME, SMTPUTF8, CHUNKING and DSN",
          "[session]") {
    const std::string keywords =
        "250-PIPELINING\r\n250-SIZE 10240000\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
        "250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n";
    for (Dialect dialect : {Dialect::lmtp, Dialect::smtp}) {
        Setup setup = setup_for(dialect);
        setup.settings.size_limit = 10'240'000;
        INFO((dialect == Dialect::lmtp ? "LMTP" : "SMTP"));
        CHECK(run(setup, in_dialect(hello, dialect)).out == "250-mx.example.org\r\n" + keywords);
        // No message_size_limit: SIZE without a number (RFC 1870 4).
        setup.settings.size_limit = 0;
        CHECK_THAT(run(setup, in_dialect(hello, dialect)).out, Catch::Contains("\r\n250-SIZE\r\n"));
    }
    // HELO is the plain RFC 821 greeting: no extensions.
    CHECK(run(setup_for(Dialect::smtp), "HELO client.example\r\n").out == "250 mx.example.org\r\n");
}

TEST_CASE("A Received: header is prepended with the protocol, the door's id, and for <rcpt> with one recipient",
          "[session]") {
    const std::string date = mail::rfc5322_date(fixed_now);
    const std::string body = "Subject: hi\n\nHello.\n";
    struct Row {
        Dialect dialect;
        std::string script;
        std::string received;
    };
    const std::vector<Row> rows = {
        {Dialect::lmtp, "LHLO client.example\r\n" + from + rcpt("a") + data,
         "Received: from client.example (mail.client.example [192.0.2.7])\n\tby mx.example.org (mailroom) with LMTP "
         "id 7QvK2m\n\tfor <a@example.org>; " + date + "\n"},
        {Dialect::lmtp, "LHLO client.example\r\n" + from + rcpt("a") + rcpt("b") + data,
         "Received: from client.example (mail.client.example [192.0.2.7])\n\tby mx.example.org (mailroom) with LMTP "
         "id 7QvK2m; " + date + "\n"},
        {Dialect::smtp, "EHLO client.example\r\n" + from + rcpt("a") + data,
         "Received: from client.example (mail.client.example [192.0.2.7])\n\tby mx.example.org (mailroom) with "
         "ESMTP id 7QvK2m\n\tfor <a@example.org>; " + date + "\n"},
        {Dialect::smtp, "HELO client.example\r\n" + from + rcpt("a") + rcpt("b") + data,
         "Received: from client.example (mail.client.example [192.0.2.7])\n\tby mx.example.org (mailroom) with "
         "SMTP id 7QvK2m; " + date + "\n"},
        // A HELO name that would close the comment and forge the rest is defanged.
        {Dialect::smtp, "HELO evil);by\r\n" + from + rcpt("a") + rcpt("b") + data,
         "Received: from evil??by (mail.client.example [192.0.2.7])\n\tby mx.example.org (mailroom) with "
         "SMTP id 7QvK2m; " + date + "\n"},
    };
    for (const auto& row : rows) {
        INFO(row.script);
        Setup setup = setup_for(row.dialect);
        setup.client = ClientInfo{"mail.client.example", "192.0.2.7"};
        const Transcript t = run(setup, row.script);
        REQUIRE(t.messages.size() == 1);
        // Written first, through the door, before any of the message.
        CHECK(t.messages[0] == row.received + body);
    }
}

TEST_CASE("The message reaches the door with LF line ends and stuffing dots removed", "[session]") {
    for (Dialect dialect : {Dialect::lmtp, Dialect::smtp}) {
        const std::string script = in_dialect(hello + from + rcpt("a"), dialect) +
                                   "DATA\r\n..leading dot\r\n.\r\n" + "MAIL FROM:<>\r\n" + rcpt("b") +
                                   "DATA\r\n.\r\n" + "MAIL FROM:<>\r\n" + rcpt("b") + "BDAT 7\r\n.a\r\n.\r\n" +
                                   "BDAT 0 LAST\r\n";
        const Transcript t = run(setup_for(dialect), script);
        REQUIRE(t.messages.size() == 3);
        // The Received: header ends with the date; what follows is the client's text.
        CHECK_THAT(t.messages[0], Catch::EndsWith("\n.leading dot\n"));
        CHECK_THAT(t.messages[1], Catch::EndsWith(mail::rfc5322_date(fixed_now) + "\n"));  // an empty message
        CHECK_THAT(t.messages[2], Catch::EndsWith("\n.a\n.\n"));  // no dot is special in BDAT
    }
}

TEST_CASE("Pipelined commands after the data are not consumed by it and are answered after committed()",
          "[session]") {
    const std::vector<std::string> texts = {
        "DATA\r\nSubject: x\r\n\r\n.\r\n",  // the tail starts right after CRLF.CRLF
        "BDAT 14 LAST\r\nSubject: x\r\n\r\n",  // ... right after the last chunk's last octet
    };
    for (const auto& text : texts) {
        for (Dialect dialect : {Dialect::lmtp, Dialect::smtp}) {
            INFO(text);
            FakeDoor door{DoorPlan{}};
            core::FixedClock clock(fixed_now);
            Session session(setup_for(dialect).settings, ClientInfo{}, door, clock);
            const std::string head = in_dialect(hello, dialect) + from + rcpt("a") + text;
            const std::string tail = "MAIL FROM:<bob@example.org>\r\nNOOP\r\nQUIT\r\n";
            const std::string script = head + tail;
            std::string out;
            auto progress = session.feed(script, out);
            REQUIRE(progress.next == Next::commit);
            CHECK(progress.consumed == head.size());  // right after the end of the data
            CHECK(session.transaction().recipients.size() == 1);
            // Nothing of the tail is answered before the data's own reply.
            const bool bdat = text[0] == 'B';
            CHECK_THAT(out, Catch::EndsWith(bdat ? "250 2.1.5 Ok\r\n" : "354 End data with <CR><LF>.<CR><LF>\r\n"));
            // Until committed(), the session reads nothing more.
            auto waiting = session.feed(std::string_view(script).substr(progress.consumed), out);
            CHECK(waiting.consumed == 0);
            CHECK(waiting.next == Next::commit);
            door.commit();
            session.committed({Status::ok()}, out);
            auto rest = session.feed(std::string_view(script).substr(progress.consumed), out);
            CHECK(rest.next == Next::close);
            CHECK(rest.consumed == tail.size());
            const auto replies = replies_of(out);
            REQUIRE(replies.size() >= 4);
            const std::vector<std::string> last(replies.end() - 4, replies.end());
            CHECK_THAT(last[0], Catch::StartsWith("250 2.0.0"));  // the message
            CHECK_THAT(last[1], Catch::StartsWith("250 2.1.0"));  // the pipelined MAIL
            CHECK_THAT(last[2], Catch::StartsWith("250 2.0.0 Ok"));
            CHECK_THAT(last[3], Catch::StartsWith("221 2.0.0"));
            CHECK(door.events.back() == "abort");  // QUIT dropped the open transaction
            CHECK(door.messages.size() == 1);
        }
    }
}

TEST_CASE("A door that answers for fewer LMTP recipients than it was given leaves the rest 451", "[session]") {
    Setup setup = setup_for(Dialect::lmtp);
    setup.outcomes = {{Status::ok()}};
    const Transcript t = run(setup, in_dialect(hello, Dialect::lmtp) + from + rcpt("a") + rcpt("b") + data);
    const auto replies = replies_of(t.out);
    REQUIRE(replies.size() >= 2);
    CHECK_THAT(replies[replies.size() - 2], Catch::StartsWith("250 2.0.0 <a@example.org>"));
    CHECK_THAT(replies.back(), Catch::StartsWith("451 4.3.0"));
}

TEST_CASE("10,000 RCPT commands in one feed are all answered, and only max_recipients are held", "[session]") {
    // The session keeps accepted recipients only: a client that sends without end
    // costs it at most max_recipients addresses, however many it sends.
    for (Dialect dialect : {Dialect::lmtp, Dialect::smtp}) {
        Setup setup = setup_for(dialect);
        setup.settings.max_recipients = 1000;
        std::string script = in_dialect(hello, dialect) + from;
        for (int i = 0; i < 10'000; ++i) script += rcpt("r" + std::to_string(i));
        const Transcript t = drive(setup, script, script.size());
        CHECK(t.consumed == script.size());
        CHECK_FALSE(t.closed);
        CHECK(t.held_recipients == 1000);
        const auto replies = replies_of(t.out);
        REQUIRE(replies.size() == 2 + 10'000);
        size_t accepted = 0, too_many = 0;
        for (size_t i = 2; i < replies.size(); ++i) {
            accepted += replies[i].rfind("250 2.1.5", 0) == 0;
            too_many += replies[i].rfind("452 4.5.3", 0) == 0;
        }
        CHECK(accepted == 1000);
        CHECK(too_many == 9000);
        // The door was asked about the first thousand only.
        CHECK(t.door.size() == 1 + 1000);
        // One byte at a time gives the same answers.
        CHECK(drive(setup, script, 1).out == t.out);
    }
}

TEST_CASE("BDAT with a bad size at the error limit is answered with one 421 and aborts the door once", "[session]") {
    // The bad size is the refusal that reaches error_limit: the session closes once.
    Setup setup = setup_for(Dialect::lmtp);
    setup.settings.error_limit = 1;
    const Transcript t = run(setup, "LHLO client.example\r\n" + from + rcpt("a") + "BDAT x\r\n");
    CHECK(t.closed);
    const auto replies = replies_of(t.out);
    REQUIRE(replies.size() == 5);
    CHECK_THAT(replies[3], Catch::StartsWith("501 5.5.4"));
    CHECK_THAT(replies[4], Catch::StartsWith("421 4.7.0"));
    CHECK(t.door == std::vector<std::string>{"open <alice@example.org>", "rcpt <a@example.org>", "abort"});
}
