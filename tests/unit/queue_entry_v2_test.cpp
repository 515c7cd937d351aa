// Queue entry format version 2 (docs/spool.md, "The entry file"): the envelope's
// DSN and client facts, alias/.forward expansion groups, state on leaves, the
// version 1 entries still read and upgraded in place.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <string>

#include "queue/queue_entry.hpp"
#include "queue/spool.hpp"
#include "support/test_support.hpp"

using namespace mailroom::mail;
using mailroom::test::slurp;
using mailroom::test::spit;
using mailroom::test::TempDir;

namespace {

Envelope plain_envelope(std::vector<std::string> recipients = {"team@host.example", "carol@host.example"}) {
    Envelope envelope;
    envelope.sender = "alice@host.example";
    envelope.recipients = std::move(recipients);
    envelope.submitter_uid = 1000;
    envelope.arrival_micros = 1'763'756'614'123'456ull;
    return envelope;
}

Envelope full_envelope() {
    Envelope e = plain_envelope({"bob@x.example", "\"odd > name\"@x.example", "carol@x.example"});
    e.recipient_dsn = {RecipientDsn{RecipientDsn::notify_success | RecipientDsn::notify_failure, "rfc822;bob@x.example"},
                       RecipientDsn{RecipientDsn::notify_never, ""}};
    e.ret = DsnReturn::hdrs;
    e.envid = "QQ314159+2Bx";
    e.client_name = "mail.far.example";
    e.client_address = "2001:db8::25";
    e.helo = "[192.0.2.7]";
    e.protocol = "ESMTPSA";
    e.auth = "alice";
    e.tls_protocol = "TLSv1.3";
    e.tls_cipher = "TLS_AES_256_GCM_SHA384";
    return e;
}

LeafRecord make_leaf(LeafKind kind, std::string address, std::string provenance, std::string owner, std::string target) {
    LeafRecord leaf;
    leaf.kind = kind;
    leaf.address = std::move(address);
    leaf.provenance = std::move(provenance);
    leaf.owner = std::move(owner);
    leaf.target = std::move(target);
    return leaf;
}

// The example of docs/spool.md: team@ is a list of bob, dave and a pipe; bob is
// delivered, the pipe deferred, dave not yet tried; carol is delivered directly.
const std::string doc_example_tail =
    "arrival 1763756614.123456\n"
    "uid 1000\n"
    "sender <alice@host.example>\n"
    "client mail.far.example 192.0.2.7\n"
    "helo mail.far.example\n"
    "protocol ESMTP\n"
    "recipient <team@host.example> notify=FAILURE,DELAY orcpt=rfc822;team@host.example\n"
    "recipient <carol@host.example>\n"
    "end\n"
    "delivered 1 1763756615 2.0.0 delivered to mailbox\n"
    "leaf 2 0 mailbox <team@host.example> aliases:12 <owner-team@host.example> bob\n"
    "leaf 3 0 mailbox <team@host.example> aliases:12 <owner-team@host.example> dave\n"
    "leaf 4 0 command <team@host.example> aliases:12 <owner-team@host.example> /usr/bin/archive --list team\n"
    "expanded 0 1763756615 3\n"
    "delivered 2 1763756615 2.0.0 delivered to mailbox\n"
    "deferred 4 1763756616 1763756916 4.3.0 command exited 75\n";

ExpansionRecord expansion_of(size_t recipient, size_t first_index, std::time_t time, std::vector<LeafRecord> leaves) {
    for (auto& leaf : leaves) {
        leaf.index = first_index++;
        leaf.recipient = recipient;
    }
    return ExpansionRecord{recipient, time, std::move(leaves)};
}

StateRecord record(StateRecord::Kind kind, size_t index, std::time_t time, std::time_t next_try = 0) {
    bool ok = kind == StateRecord::Kind::delivered;
    return StateRecord{kind, {index}, time, next_try, ok ? "2.0.0" : kind == StateRecord::Kind::deferred ? "4.2.0" : "5.1.1",
                       ok ? "delivered" : "no", ""};
}

StateRecord notified(std::vector<size_t> indexes, std::time_t time) {
    StateRecord r;
    r.kind = StateRecord::Kind::notified;
    r.indexes = std::move(indexes);
    r.time = time;
    r.notice_id = "NOTICEID00001";
    return r;
}

std::string submit(const Spool& spool, Envelope envelope) {
    auto writer = QueueWriter::begin(spool);
    REQUIRE(writer);
    REQUIRE(writer->write("Subject: hi\n\nbody\n"));
    REQUIRE(writer->commit(envelope));
    return writer->id();
}

// An entry as version 1 wrote it: the same bytes with the version digit 1.
std::string submit_v1(const Spool& spool, std::vector<std::string> recipients) {
    auto id = submit(spool, plain_envelope(std::move(recipients)));
    std::string path = spool.entry_path(QueueFolder::queue, id);
    std::string content = slurp(path);
    REQUIRE(content.substr(0, 17) == "mailroom-queue 2 ");
    content[queue_version_offset] = '1';
    spit(path, content);
    return id;
}

LockedEntry lock(const Spool& spool, const std::string& id) {
    auto attempt = LockedEntry::lock(spool, QueueFolder::queue, id);
    REQUIRE(attempt);
    REQUIRE(attempt->entry);
    return std::move(*attempt->entry);
}

std::string tail_of(const Spool& spool, const std::string& id) {
    std::string content = slurp(spool.entry_path(QueueFolder::queue, id));
    return content.substr(content.find("\narrival ") + 1);
}

}  // namespace

TEST_CASE("New entries are written as version 2, the first line still 46 bytes", "[queue_entry]") {
    CHECK(format_queue_header(1304) == "mailroom-queue 2 message 00000000000000001304\n");
    CHECK(format_queue_header(1304).size() == queue_header_size);
    auto v1 = parse_queue_first_line("mailroom-queue 1 message 00000000000000001304\n");
    REQUIRE(v1);
    CHECK(v1->version == 1);
    CHECK(v1->message_size == 1304);
    auto v2 = parse_queue_first_line(format_queue_header(77));
    REQUIRE(v2);
    CHECK(v2->version == 2);
    CHECK(v2->message_size == 77);
    for (const char* unknown : {"mailroom-queue 0 message 00000000000000001304\n", "mailroom-queue 3 message 00000000000000001304\n",
                                "mailroom-queue 12 message 0000000000000001304\n"}) {
        INFO(unknown);
        auto r = parse_queue_first_line(unknown);
        REQUIRE_FALSE(r);
        CHECK(r.error().code.value() == EBADMSG);
        CHECK_THAT(r.error().context, Catch::Contains("unknown queue entry version"));
    }
}

TEST_CASE("Version 2 round trip: every envelope field reads back as written, in a fixed order", "[queue_entry]") {
    Envelope e = full_envelope();
    REQUIRE(check_envelope(e));
    std::string text = format_envelope(e);
    CHECK(text ==
          "arrival 1763756614.123456\nuid 1000\nsender <alice@host.example>\n"
          "ret hdrs\nenvid QQ314159+2Bx\nclient mail.far.example 2001:db8::25\nhelo [192.0.2.7]\nprotocol ESMTPSA\n"
          "auth alice\ntls TLSv1.3 TLS_AES_256_GCM_SHA384\n"
          "recipient <bob@x.example> notify=SUCCESS,FAILURE orcpt=rfc822;bob@x.example\n"
          "recipient <\"odd > name\"@x.example> notify=NEVER\n"
          "recipient <carol@x.example>\nend\n");
    auto parsed = parse_entry_tail(text);
    REQUIRE(parsed);
    const Envelope& p = parsed->envelope;
    CHECK(parsed->version == 2);
    CHECK(p.sender == e.sender);
    CHECK(p.recipients == e.recipients);
    CHECK(p.recipient_dsn.size() == 3);
    for (size_t i = 0; i < 3; ++i) CHECK(p.dsn(i) == e.dsn(i));
    CHECK(p.dsn(0).wants(RecipientDsn::notify_success));
    CHECK_FALSE(p.dsn(0).wants(RecipientDsn::notify_delay));
    CHECK_FALSE(p.dsn(1).wants(RecipientDsn::notify_failure));
    CHECK(p.dsn(2).wants(RecipientDsn::notify_failure));  // none given: RFC 3461's FAILURE,DELAY
    CHECK(p.dsn(2).wants(RecipientDsn::notify_delay));
    CHECK(p.ret == DsnReturn::hdrs);
    CHECK(p.envid == e.envid);
    CHECK(p.client_name == e.client_name);
    CHECK(p.client_address == e.client_address);
    CHECK(p.helo == e.helo);
    CHECK(p.protocol == e.protocol);
    CHECK(p.auth == e.auth);
    CHECK(p.tls_protocol == e.tls_protocol);
    CHECK(p.tls_cipher == e.tls_cipher);
    CHECK(format_envelope(p) == text);
    CHECK(parsed->valid_length == text.size());

    // Each optional line alone, and none: the plain envelope has only the version 1 lines.
    CHECK(format_envelope(plain_envelope()) ==
          "arrival 1763756614.123456\nuid 1000\nsender <alice@host.example>\nrecipient <team@host.example>\n"
          "recipient <carol@host.example>\nend\n");
    Envelope local = plain_envelope();
    local.protocol = "local";
    local.ret = DsnReturn::full;
    auto again = parse_entry_tail(format_envelope(local));
    REQUIRE(again);
    CHECK(again->envelope.protocol == "local");
    CHECK(again->envelope.ret == DsnReturn::full);
    CHECK(again->envelope.client_name.empty());
}

TEST_CASE("NOTIFY is NEVER or a subset of SUCCESS, FAILURE, DELAY, ORCPT and ENVID are xtext", "[queue_entry]") {
    CHECK(parse_dsn_notify("NEVER") == RecipientDsn::notify_never);
    CHECK(parse_dsn_notify("delay,Success") == (RecipientDsn::notify_delay | RecipientDsn::notify_success));
    CHECK(format_dsn_notify(RecipientDsn::notify_delay | RecipientDsn::notify_success | RecipientDsn::notify_failure) ==
          "SUCCESS,FAILURE,DELAY");
    for (const char* bad : {"", "NEVER,SUCCESS", "SUCCESS,SUCCESS", "SUCCESS,", ",DELAY", "SOMETIMES", "FAILURE DELAY"}) {
        INFO(bad);
        CHECK_FALSE(parse_dsn_notify(bad));
    }
    CHECK(is_valid_orcpt("rfc822;bob@x.example"));
    CHECK(is_valid_orcpt("rfc822;a+2Bb@x"));
    CHECK(is_valid_orcpt("utf-8;j\xc3\xb6rg@x"));
    for (std::string bad : std::vector<std::string>{"bob@x", ";bob@x", "rfc822;", "rfc822;a b", "rfc822;a=b", "rfc822;a+2", "rfc822;a+ZZ",
                            "rfc 822;a", std::string("rfc822;a\0b", 10), "rfc822;" + std::string(500, 'a')}) {
        INFO(bad);
        CHECK_FALSE(is_valid_orcpt(bad));
    }
    CHECK(is_valid_envid("QQ314159"));
    CHECK_FALSE(is_valid_envid(std::string(101, 'x')));
    CHECK_FALSE(is_valid_envid("j\xc3\xb6rg"));
}

TEST_CASE("A version 1 entry still reads, a version 2 line in it is corrupt", "[queue_entry]") {
    std::string v1 = format_envelope(plain_envelope()) + "delivered 1 990 2.0.0 ok\n";
    auto parsed = parse_entry_tail(v1, 1);
    REQUIRE(parsed);
    CHECK(parsed->version == 1);
    CHECK(parsed->state.recipients[1].phase == RecipientPhase::delivered);
    CHECK(parsed->valid_length == v1.size());
    auto as_v2 = parse_entry_tail(v1, 2);  // the same bytes: a v1 file is a v2 file without the new lines
    REQUIRE(as_v2);
    CHECK(as_v2->state.recipients[1].phase == RecipientPhase::delivered);

    std::string head = "arrival 1.000000\nuid 0\nsender <>\n";
    for (std::string bad : std::vector<std::string>{head + "protocol local\nrecipient <a@b>\nend\n", head + "recipient <a@b> notify=NEVER\nend\n",
                            format_envelope(plain_envelope()) + "leaf 2 0 mailbox <a@b> - - a\nexpanded 0 1 1\n"}) {
        INFO(bad);
        auto r = parse_entry_tail(bad, 1);
        REQUIRE_FALSE(r);
        CHECK(r.error().code.value() == EBADMSG);
        CHECK_THAT(r.error().context, Catch::Contains("version 2") && Catch::Contains("version 1"));
        CHECK(parse_entry_tail(bad, 2));
    }
    CHECK_FALSE(parse_entry_tail(format_envelope(plain_envelope()), 3));
}

TEST_CASE("The docs' example entry reads: a list of two users and a pipe, one delivered, one deferred", "[queue_entry]") {
    auto parsed = parse_entry_tail(doc_example_tail);
    REQUIRE(parsed);
    const EntryState& s = parsed->state;
    CHECK(parsed->envelope.dsn(0).notify == (RecipientDsn::notify_failure | RecipientDsn::notify_delay));
    CHECK(parsed->envelope.dsn(0).orcpt == "rfc822;team@host.example");
    CHECK(s.expanded(0));
    CHECK_FALSE(s.expanded(1));
    CHECK(s.recipient_done(1));
    auto leaves = s.current_leaves(0);
    REQUIRE(leaves.size() == 3);
    CHECK(leaves[0]->leaf.index == 2);
    CHECK(leaves[0]->leaf.recipient == 0);
    CHECK(leaves[0]->leaf.kind == LeafKind::mailbox);
    CHECK(leaves[0]->leaf.address == "team@host.example");
    CHECK(leaves[0]->leaf.provenance == "aliases:12");
    CHECK(leaves[0]->leaf.owner == "owner-team@host.example");
    CHECK(leaves[0]->leaf.target == "bob");
    CHECK(leaves[0]->state.phase == RecipientPhase::delivered);
    CHECK(leaves[1]->leaf.target == "dave");
    CHECK(leaves[1]->state.phase == RecipientPhase::pending);
    CHECK(leaves[2]->leaf.kind == LeafKind::command);
    CHECK(leaves[2]->leaf.target == "/usr/bin/archive --list team");
    CHECK(leaves[2]->state.phase == RecipientPhase::deferred);
    CHECK(leaves[2]->state.next_try == 1763756916);
    CHECK(s.next_try() == 1763756916);
    CHECK_FALSE(s.all_done());
    CHECK(s.target_state(4) == &leaves[2]->state);
    CHECK(s.target_state(5) == nullptr);
    CHECK(s.next_leaf_index() == 5);
}

TEST_CASE("State records on leaves fold: an expanded recipient is done when all its current leaves are", "[queue_entry]") {
    std::string tail = format_envelope(plain_envelope({"team@h", "eve@h"}));
    tail += format_expansion(expansion_of(0, 2, 100,
                                          {make_leaf(LeafKind::mailbox, "team@h", "aliases:3", "", "bob"),
                                           make_leaf(LeafKind::error, "team@h", "aliases:3", "", "5.1.1 gone away"),
                                           make_leaf(LeafKind::file, "team@h", "/etc/mail/team list.inc:1", "", "/var/log/team mail")}));
    tail += format_state_record(record(StateRecord::Kind::delivered, 1, 101));  // eve, not expanded
    tail += format_state_record(record(StateRecord::Kind::delivered, 2, 102));
    tail += format_state_record(record(StateRecord::Kind::deferred, 4, 102, 500));
    tail += format_state_record(record(StateRecord::Kind::failed, 3, 102));
    CHECK_THAT(tail, Catch::Contains("leaf 4 0 file <team@h> /etc/mail/team%20list.inc:1 - /var/log/team mail\n"));
    auto parsed = parse_entry_tail(tail);
    REQUIRE(parsed);
    EntryState s = parsed->state;
    CHECK(s.current_leaves(0)[2]->leaf.provenance == "/etc/mail/team list.inc:1");
    CHECK(s.recipients[0].phase == RecipientPhase::pending);  // its own state: never tried itself
    CHECK(s.next_try() == 500);
    CHECK_FALSE(s.recipient_done(0));
    CHECK(s.recipient_done(1));

    // An error leaf is a failed leaf once recorded as failed, done once notified.
    apply_state_record(s, notified({3}, 103));
    StateRecord requeued{StateRecord::Kind::requeued, {}, 150, 0, "", "", ""};
    apply_state_record(s, requeued);
    CHECK(s.leaf(4)->state.next_try == 150);  // requeue makes deferred leaves due now too
    CHECK(s.next_try() == 150);
    apply_state_record(s, record(StateRecord::Kind::delivered, 4, 160));
    CHECK(s.all_done());
    CHECK(s.next_try() == 0);

    // Records naming a leaf not yet recorded, or the expanded recipient itself, are corrupt.
    for (std::string bad : {"delivered 5 1 2.0.0 ok\n", "notified 3,9 1 X\n", "delivered 0 1 2.0.0 ok\n", "notified 0 1 X\n"}) {
        INFO(bad);
        auto r = parse_entry_tail(tail + bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().code.value() == EBADMSG);
        CHECK_THAT(r.error().context, Catch::Contains("does not exist") || Catch::Contains("is expanded"));
    }
    // Before its expansion a recipient's own records are fine (a deferred expansion, say).
    std::string before = format_envelope(plain_envelope({"team@h"})) +
                         format_state_record(record(StateRecord::Kind::deferred, 0, 50, 60)) +
                         format_expansion(expansion_of(0, 1, 100, {make_leaf(LeafKind::mailbox, "team@h", "-", "", "team")}));
    auto ok = parse_entry_tail(before);
    REQUIRE(ok);
    CHECK(ok->state.next_try() == 0);  // the recipient's own deferral no longer counts
    CHECK_FALSE(ok->state.all_done());
}

TEST_CASE("Re-expansion supersedes the leaves not yet done and keeps the delivered ones", "[queue_entry]") {
    std::string tail = format_envelope(plain_envelope({"team@h"}));
    tail += format_expansion(expansion_of(0, 1, 100,
                                          {make_leaf(LeafKind::mailbox, "team@h", "aliases:3", "", "bob"),
                                           make_leaf(LeafKind::remote, "team@h", "aliases:3", "", "x@far.example"),
                                           make_leaf(LeafKind::command, "team@h", "aliases:3", "", "exit 75")}));
    tail += format_state_record(record(StateRecord::Kind::delivered, 1, 101));
    tail += format_state_record(record(StateRecord::Kind::deferred, 2, 101, 400));
    tail += format_state_record(record(StateRecord::Kind::failed, 3, 101));
    // mailctl requeue: the aliases changed; bob is not written again.
    tail += format_expansion(expansion_of(0, 4, 200,
                                          {make_leaf(LeafKind::remote, "team@h", "aliases:3", "", "y@far.example")}));
    auto parsed = parse_entry_tail(tail);
    REQUIRE(parsed);
    const EntryState& s = parsed->state;
    CHECK(s.expansions[0].expansions == 2);
    CHECK(s.expansions[0].time == 200);
    CHECK(s.expansions[0].current == std::vector<size_t>{1, 4});
    CHECK_FALSE(s.leaf(1)->superseded);
    CHECK(s.leaf(1)->state.phase == RecipientPhase::delivered);
    CHECK(s.leaf(2)->superseded);
    CHECK(s.leaf(3)->superseded);  // failed but no notice yet: not done, so replaced
    CHECK(s.next_try() == 0);      // the superseded deferral is no longer tried
    CHECK_FALSE(s.all_done());
    auto done = parse_entry_tail(tail + format_state_record(record(StateRecord::Kind::delivered, 4, 201)));
    REQUIRE(done);
    CHECK(done->state.all_done());
}

TEST_CASE("Leaves without their closing expanded record are ignored, at any cut", "[queue_entry]") {
    std::string envelope = format_envelope(plain_envelope({"team@h", "eve@h"}));
    std::string before = envelope + format_state_record(record(StateRecord::Kind::delivered, 1, 10));
    std::string group = format_expansion(expansion_of(0, 2, 100,
                                                      {make_leaf(LeafKind::mailbox, "team@h", "aliases:3", "", "bob"),
                                                       make_leaf(LeafKind::mailbox, "team@h", "aliases:3", "", "dave")}));
    for (size_t cut = 0; cut < group.size(); ++cut) {
        INFO(cut);
        auto parsed = parse_entry_tail(before + group.substr(0, cut));
        REQUIRE(parsed);
        CHECK(parsed->valid_length == before.size());
        CHECK(parsed->state.leaves.empty());
        CHECK_FALSE(parsed->state.expanded(0));
    }
    auto whole = parse_entry_tail(before + group);
    REQUIRE(whole);
    CHECK(whole->valid_length == before.size() + group.size());
    CHECK(whole->state.current_leaves(0).size() == 2);
    // An unclosed group followed by anything else is not a torn append: corrupt.
    std::string unclosed = group.substr(0, group.find("expanded"));
    auto r = parse_entry_tail(before + unclosed + "delivered 1 11 2.0.0 ok\n");
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().context, Catch::Contains("not closed by their expanded record"));
}

TEST_CASE("Each malformed leaf, expanded or envelope line is corrupt with a clear reason", "[queue_entry]") {
    const std::string envelope = format_envelope(plain_envelope({"team@h", "eve@h"}));
    const std::string leaf2 = "leaf 2 0 mailbox <team@h> aliases:3 - bob\n";
    struct Case {
        std::string tail;
        std::string reason;
    };
    std::vector<Case> cases = {
        {envelope + "leaf 2 0 mailbag <team@h> aliases:3 - bob\nexpanded 0 1 1\n", "unknown leaf kind \"mailbag\""},
        {envelope + "leaf x 0 mailbox <team@h> aliases:3 - bob\nexpanded 0 1 1\n", "bad leaf index"},
        {envelope + "leaf 1 0 mailbox <team@h> aliases:3 - bob\nexpanded 0 1 1\n", "leaf 1 where leaf 2 comes next"},
        {envelope + leaf2 + "leaf 4 0 mailbox <team@h> aliases:3 - dave\nexpanded 0 1 2\n", "leaf 4 where leaf 3 comes next"},
        {envelope + leaf2 + "expanded 0 1 1\nleaf 2 0 mailbox <team@h> aliases:3 - bob\nexpanded 0 1 1\n",
         "leaf 2 where leaf 3 comes next"},
        {envelope + "leaf 2 2 mailbox <team@h> aliases:3 - bob\nexpanded 2 1 1\n", "leaf of recipient 2, which does not exist"},
        {envelope + "leaf 2 y mailbox <team@h> aliases:3 - bob\nexpanded 0 1 1\n", "bad recipient index"},
        {envelope + leaf2 + "expanded 0 1 2\n", "count 2 but 1 leaf records before it"},
        {envelope + leaf2 + "expanded 1 1 1\n", "leaf 2 of recipient 0 in the group of recipient 1"},
        {envelope + "expanded 5 1 0\n", "recipient 5 does not exist"},
        {envelope + leaf2 + "expanded 0 1\n", "not \"expanded RCPT TIME COUNT\""},
        {envelope + leaf2 + "expanded 0 1 1 extra\n", "not \"expanded RCPT TIME COUNT\""},
        {envelope + "leaf 2 0 mailbox team@h aliases:3 - bob\nexpanded 0 1 1\n", "bad leaf address"},
        {envelope + "leaf 2 0 mailbox <> aliases:3 - bob\nexpanded 0 1 1\n", "empty leaf address"},
        {envelope + "leaf 2 0 mailbox <team@h> aliases:3 owner - bob\nexpanded 0 1 1\n", "bad owner"},
        {envelope + "leaf 2 0 mailbox <team@h> aliases:3 -\nexpanded 0 1 1\n", "bad owner"},
        {envelope + "leaf 2 0 mailbox <team@h> aliases:3 - \nexpanded 0 1 1\n", "empty target"},
        {envelope + "leaf 2 0 mailbox <team@h> aliases%2:3 - bob\nexpanded 0 1 1\n", "bad provenance"},
        {envelope + "leaf 2 0 mailbox <team@h> aliases:3%0A - bob\nexpanded 0 1 1\n", "provenance holds NUL, CR or LF"},
        {envelope + "leaf 2 0 mailbox <team@h> aliases:3 - bob smith\nexpanded 0 1 1\n", "mailbox user \"bob smith\""},
        {envelope + "leaf 2 0 file <team@h> aliases:3 - var/log\nexpanded 0 1 1\n", "not an absolute path"},
        {envelope + "leaf 2 0 error <team@h> aliases:3 - 2.0.0 fine\nexpanded 0 1 1\n", "4.x.y or 5.x.y"},
        {envelope + "leaf 2 0 error <team@h> aliases:3 - no code\nexpanded 0 1 1\n", "4.x.y or 5.x.y"},
        {envelope + "leaf 2 0 command <team@h> aliases:3 - echo\r\nexpanded 0 1 1\n", "holds a control character"},
        {envelope + std::string("leaf 2 0 command <team@h> aliases:3 - echo\0x\nexpanded 0 1 1\n", 54), "holds a control character"},
        {envelope + std::string("leaf 2 0 remote <te\0m@h> aliases:3 - x@y\nexpanded 0 1 1\n", 53), "holds a control character"},
        {envelope + "leaf 2 0 command <team@h> aliases:3 - " + std::string(8193, 'x') + "\nexpanded 0 1 1\n",
         "target longer than 8192 octets"},
        {envelope + "leaf 2 0 mailbox <team@h> " + std::string(4201, 'p') + " - bob\nexpanded 0 1 1\n", "provenance longer"},
        {envelope + "leaf 2 0 mailbox <" + std::string(999, 'a') + "> aliases:3 - bob\nexpanded 0 1 1\n",
         "leaf address longer than 998 octets"},
    };
    const std::string head = "arrival 1.000000\nuid 0\nsender <>\n";
    const std::vector<Case> envelope_cases = {
        {head + "recipient <a@b> notify=SOMETIMES\nend\n", "bad NOTIFY \"SOMETIMES\""},
        {head + "recipient <a@b> notify=NEVER,DELAY\nend\n", "bad NOTIFY"},
        {head + "recipient <a@b> orcpt=bob\nend\n", "bad ORCPT \"bob\""},
        {head + "recipient <a@b> orcpt=rfc822;x notify=NEVER\nend\n", "unknown recipient parameter \"notify=NEVER\""},
        {head + "recipient <a@b> colour=blue\nend\n", "unknown recipient parameter \"colour=blue\""},
        {head + "recipient <a@b>  notify=NEVER\nend\n", "unknown recipient parameter"},
        {head + "ret everything\nrecipient <a@b>\nend\n", "bad RET \"everything\""},
        {head + "envid a=b\nrecipient <a@b>\nend\n", "bad ENVID"},
        {head + "envid " + std::string(101, 'e') + "\nrecipient <a@b>\nend\n", "bad ENVID"},
        {head + "client far.example\nrecipient <a@b>\nend\n", "client line without an address"},
        {head + "client far.example 192.0.2.300\nrecipient <a@b>\nend\n", "is not an IP address"},
        {head + "client far/example 192.0.2.3\nrecipient <a@b>\nend\n", "is not a host name"},
        {head + "client unknown 192.0.2.3 extra\nrecipient <a@b>\nend\n", "is not an IP address"},
        {head + "helo two words\nrecipient <a@b>\nend\n", "HELO name \"two words\" holds a space"},
        {head + "helo " + std::string(256, 'h') + "\nrecipient <a@b>\nend\n", "HELO name longer than 255 octets"},
        {head + "helo a\rb\nrecipient <a@b>\nend\n", "holds a space or control character"},
        {head + "protocol SMTPX\nrecipient <a@b>\nend\n", "unknown protocol \"SMTPX\""},
        {head + "auth \nrecipient <a@b>\nend\n", "empty AUTH user"},
        {head + "tls TLSv1.3\nrecipient <a@b>\nend\n", "empty TLS cipher"},
        {head + "protocol ESMTP\nhelo x\nrecipient <a@b>\nend\n", "\"helo\" repeated or out of order"},
        {head + "helo x\nhelo y\nrecipient <a@b>\nend\n", "\"helo\" repeated or out of order"},
        {head + "recipient <a@b>\nprotocol ESMTP\nend\n", "\"protocol\" repeated or out of order"},
        {head + "recipient <" + std::string(999, 'a') + ">\nend\n", "recipient longer than 998 octets"},
        {head + "recipient <a@b> notify=NEVER\nend\n", ""},  // fine: the control case
    };
    cases.insert(cases.end(), envelope_cases.begin(), envelope_cases.end());
    for (const auto& c : cases) {
        INFO(c.tail.substr(0, 300));
        auto r = parse_entry_tail(c.tail);
        if (c.reason.empty()) {
            CHECK(r);
            continue;
        }
        REQUIRE_FALSE(r);
        CHECK(r.error().code.value() == EBADMSG);
        CHECK_THAT(r.error().context, Catch::Contains(c.reason));
    }
}

TEST_CASE("What would not read back is refused before anything is written", "[queue_entry]") {
    Envelope e = full_envelope();
    REQUIRE(check_envelope(e));
    auto refused = [](const Envelope& bad) {
        auto r = check_envelope(bad);
        return !r && r.error().code.value() == EINVAL;
    };
    Envelope bad = e;
    bad.helo = "two words";
    CHECK(refused(bad));
    bad = e;
    bad.client_address = "";
    CHECK(refused(bad));
    bad = e;
    bad.recipient_dsn[0].orcpt = "rfc822;a b";
    CHECK(refused(bad));
    bad = e;
    bad.recipient_dsn[0].notify = RecipientDsn::notify_never | RecipientDsn::notify_delay;
    CHECK(refused(bad));
    bad = e;
    bad.recipient_dsn.resize(4);
    CHECK(refused(bad));
    bad = e;
    bad.recipients[1] = "\"unclosed > quote@x";
    CHECK(refused(bad));
    bad = e;
    bad.protocol = "FTP";
    CHECK(refused(bad));
    bad = e;
    bad.tls_cipher = "";
    CHECK(refused(bad));

    EntryState state;
    state.recipients.resize(1);
    auto good = expansion_of(0, 1, 5, {make_leaf(LeafKind::command, "a@b", "~bob/.forward:1", "", "procmail -d bob")});
    REQUIRE(check_expansion(state, good));
    for (auto [what, change] : std::vector<std::pair<std::string, std::function<void(ExpansionRecord&)>>>{
             {"gap", [](ExpansionRecord& x) { x.leaves[0].index = 2; }},
             {"other recipient", [](ExpansionRecord& x) { x.leaves[0].recipient = 1; }},
             {"recipient out of range", [](ExpansionRecord& x) { x.recipient = 1; }},
             {"LF in target", [](ExpansionRecord& x) { x.leaves[0].target = "a\nb"; }},
             {"CR in provenance", [](ExpansionRecord& x) { x.leaves[0].provenance = "a\rb"; }},
             {"unclosed quote in owner", [](ExpansionRecord& x) { x.leaves[0].owner = "\"x"; }},
         }) {
        INFO(what);
        ExpansionRecord x = good;
        change(x);
        auto r = check_expansion(state, x);
        REQUIRE_FALSE(r);
        CHECK(r.error().code.value() == EINVAL);
    }
}

TEST_CASE("An expansion group is appended in one piece under the lock and read back by the next runner",
          "[queue_entry][spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto id = submit(*spool, plain_envelope());
    {
        LockedEntry entry = lock(*spool, id);
        CHECK(entry.version() == 2);
        REQUIRE(entry.append_expansion(0, 100,
                                       {make_leaf(LeafKind::mailbox, "team@host.example", "aliases:12", "owner-team@host.example", "bob"),
                                        make_leaf(LeafKind::command, "team@host.example", "aliases:12", "owner-team@host.example",
                                                  "/usr/bin/archive --list team")}));
        CHECK(entry.state().current_leaves(0).size() == 2);
        REQUIRE(entry.append({record(StateRecord::Kind::delivered, 2, 101)}));
        // A record for a leaf that does not exist, or for the expanded recipient, is refused unwritten.
        auto refused = entry.append({record(StateRecord::Kind::delivered, 4, 101)});
        REQUIRE_FALSE(refused);
        CHECK(refused.error().errno_value() == EINVAL);
        CHECK_FALSE(entry.append({record(StateRecord::Kind::delivered, 0, 101)}));
        CHECK_FALSE(entry.append_expansion(0, 102, {make_leaf(LeafKind::file, "team@host.example", "-", "", "relative")}));
    }
    CHECK(tail_of(*spool, id) ==
          "arrival 1763756614.123456\nuid 1000\nsender <alice@host.example>\nrecipient <team@host.example>\n"
          "recipient <carol@host.example>\nend\n"
          "leaf 2 0 mailbox <team@host.example> aliases:12 <owner-team@host.example> bob\n"
          "leaf 3 0 command <team@host.example> aliases:12 <owner-team@host.example> /usr/bin/archive --list team\n"
          "expanded 0 100 2\n"
          "delivered 2 101 2.0.0 delivered\n");
    auto seen = read_entry(*spool, QueueFolder::queue, id);
    REQUIRE(seen);
    auto leaves = seen->state.current_leaves(0);
    REQUIRE(leaves.size() == 2);
    CHECK(leaves[0]->state.phase == RecipientPhase::delivered);
    CHECK(leaves[1]->leaf.target == "/usr/bin/archive --list team");
    CHECK(leaves[1]->leaf.owner == "owner-team@host.example");
}

TEST_CASE("A group cut before its expanded line is ignored and cut off by the next append", "[queue_entry][spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto id = submit(*spool, plain_envelope());
    std::string path = spool->entry_path(QueueFolder::queue, id);
    std::string committed = slurp(path);
    // What a crash in the middle of append_expansion's write leaves: a prefix.
    spit(path, "leaf 2 0 mailbox <team@host.example> aliases:12 - bob\nleaf 3 0 mailbox <team@host.exa", true);
    auto seen = read_entry(*spool, QueueFolder::queue, id);
    REQUIRE(seen);
    CHECK(seen->state.leaves.empty());
    {
        LockedEntry entry = lock(*spool, id);
        CHECK(slurp(path) == committed);  // cut by the holder of the lock
        REQUIRE(entry.append_expansion(0, 200, {make_leaf(LeafKind::mailbox, "team@host.example", "aliases:12", "", "dave")}));
    }
    auto after = read_entry(*spool, QueueFolder::queue, id);
    REQUIRE(after);
    auto leaves = after->state.current_leaves(0);
    REQUIRE(leaves.size() == 1);
    CHECK(leaves[0]->leaf.index == 2);
    CHECK(leaves[0]->leaf.target == "dave");
    CHECK(slurp(path) == committed + "leaf 2 0 mailbox <team@host.example> aliases:12 - dave\nexpanded 0 200 1\n");
}

TEST_CASE("A version 1 entry is upgraded in place before its first expansion", "[queue_entry][spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto id = submit_v1(*spool, {"team@host.example", "carol@host.example"});
    std::string path = spool->entry_path(QueueFolder::queue, id);
    std::string v1 = slurp(path);
    {
        LockedEntry entry = lock(*spool, id);
        CHECK(entry.version() == 1);
        // A plain state record keeps it version 1: nothing in it needs version 2.
        REQUIRE(entry.append({record(StateRecord::Kind::delivered, 1, 50)}));
        CHECK(slurp(path).substr(0, 17) == "mailroom-queue 1 ");
        REQUIRE(entry.append_expansion(0, 100, {make_leaf(LeafKind::mailbox, "team@host.example", "aliases:1", "", "bob")}));
        CHECK(entry.version() == 2);
    }
    std::string v2 = slurp(path);
    CHECK(v2.substr(0, queue_header_size) == "mailroom-queue 2 message 00000000000000000018\n");
    CHECK(v2.substr(queue_header_size, v1.size() - queue_header_size) == v1.substr(queue_header_size));
    auto seen = read_entry(*spool, QueueFolder::queue, id);
    REQUIRE(seen);
    CHECK(seen->version == 2);
    CHECK(seen->state.recipients[1].phase == RecipientPhase::delivered);
    CHECK(seen->state.current_leaves(0).size() == 1);
}

TEST_CASE("A crash between the upgrade and the append leaves an entry that still reads", "[queue_entry][spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto id = submit_v1(*spool, {"team@host.example"});
    std::string path = spool->entry_path(QueueFolder::queue, id);
    std::string v1 = slurp(path);
    {
        LockedEntry entry = lock(*spool, id);
        REQUIRE(entry.upgrade());
        CHECK(entry.version() == 2);
        REQUIRE(entry.upgrade());  // twice is once
    }  // the "crash": the lock goes, no expansion was appended
    std::string upgraded = slurp(path);
    CHECK(upgraded.substr(0, 17) == "mailroom-queue 2 ");
    CHECK(upgraded.substr(17) == v1.substr(17));
    auto seen = read_entry(*spool, QueueFolder::queue, id);
    REQUIRE(seen);
    CHECK(seen->version == 2);
    CHECK(seen->state.leaves.empty());
    LockedEntry again = lock(*spool, id);
    REQUIRE(again.append_expansion(0, 100, {make_leaf(LeafKind::mailbox, "team@host.example", "-", "", "team")}));
    CHECK(again.state().current_leaves(0).size() == 1);
}

TEST_CASE("A version 2 record in a file still marked version 1 is corrupt", "[queue_entry][spool]") {
    // What the upgrade's fdatasync before the append prevents.
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto id = submit_v1(*spool, {"team@host.example"});
    spit(spool->entry_path(QueueFolder::queue, id), "leaf 1 0 mailbox <team@host.example> - - team\nexpanded 0 1 1\n", true);
    auto attempt = LockedEntry::lock(*spool, QueueFolder::queue, id);
    REQUIRE_FALSE(attempt);
    CHECK(attempt.error().code.value() == EBADMSG);
    CHECK_THAT(attempt.error().context, Catch::Contains("a version 2 record in a version 1 queue entry"));
}

TEST_CASE("A commit refuses an envelope that would not read back: nothing is queued", "[queue_entry][spool]") {
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    Envelope bad = full_envelope();
    bad.auth = "alice smith";
    auto writer = QueueWriter::begin(*spool);
    REQUIRE(writer);
    REQUIRE(writer->write("x\n"));
    auto committed = writer->commit(bad);
    REQUIRE_FALSE(committed);
    CHECK(committed.error().errno_value() == EINVAL);
    CHECK_THAT(committed.error().context, Catch::Contains("AUTH user"));
    auto id = submit(*spool, full_envelope());
    auto seen = read_entry(*spool, QueueFolder::queue, id);
    REQUIRE(seen);
    CHECK(seen->envelope.tls_cipher == "TLS_AES_256_GCM_SHA384");
    CHECK(seen->envelope.dsn(1).notify == RecipientDsn::notify_never);
}

TEST_CASE("A version 1 entry that version 2 would read differently is not upgraded", "[queue_entry][spool]") {
    // Version 1 took a recipient by its outermost brackets; an unclosed quote (which
    // Address never lets in) would end it elsewhere in version 2.
    TempDir tmp;
    auto spool = Spool::open(tmp.path);
    REQUIRE(spool);
    auto id = submit_v1(*spool, {"team@host.example"});
    std::string path = spool->entry_path(QueueFolder::queue, id);
    std::string content = slurp(path);
    auto at = content.find("recipient <team@host.example>");
    content.replace(at, 29, "recipient <\"team> x@host.example>");
    spit(path, content);
    LockedEntry entry = lock(*spool, id);
    CHECK(entry.envelope().recipients[0] == "\"team> x@host.example");
    auto refused = entry.append_expansion(0, 100, {make_leaf(LeafKind::mailbox, "team@host.example", "-", "", "team")});
    REQUIRE_FALSE(refused);
    CHECK(refused.error().errno_value() == EINVAL);
    CHECK_THAT(refused.error().context, Catch::Contains("cannot upgrade"));
    CHECK(slurp(path) == content);
    CHECK(entry.version() == 1);
}
