// Queue IDs and the queue entry format (docs/spool.md).
#include "queue/queue_entry.hpp"
#include "queue/queue_id.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>
#include <string>

using namespace mailroom::mail;

TEST_CASE("Queue IDs: 10-20 characters of [0-9A-Za-z], unique, sorting in arrival order", "[queue]") {
    QueueIdGenerator ids;
    std::set<std::string> seen;
    std::string previous;
    for (uint64_t micros : {1'700'000'000'000'000ull, 1'700'000'000'000'001ull, 1'763'756'614'123'456ull,
                            1'800'000'000'000'000ull}) {
        auto id = ids.next(micros, 4242);
        INFO(id);
        CHECK(id.size() >= 10);
        CHECK(id.size() <= 20);
        CHECK(is_valid_queue_id(id));
        CHECK(queue_id_micros(id) == micros);
        CHECK(id > previous);
        previous = id;
        seen.insert(id);
    }
    // One microsecond, one process: the counter keeps them apart; other pids too.
    for (int i = 0; i < 1000; ++i) seen.insert(ids.next(1'763'756'614'000'000ull, 4242));
    for (pid_t pid = 1; pid < 100; ++pid) seen.insert(ids.next(1'763'756'614'000'000ull, pid));
    CHECK(seen.size() == 4 + 1000 + 99);
    CHECK(is_valid_queue_id(QueueIdGenerator().next()));
}

TEST_CASE("Queue IDs from a folder or the command line are checked before use as a file name", "[queue]") {
    for (const char* bad : {"", "..", "../../etc/passwd", "ABCDEFGHIJKLMN/", "ABCDEFGHIJKLMN.", "ABCDEFGHIJKLMNOP",
                            "ABCDEFG HIJKLMN", "tmp.ABCDEFGHIJK"}) {
        INFO(bad);
        CHECK_FALSE(is_valid_queue_id(bad));
    }
}

namespace {

Envelope sample_envelope() {
    Envelope envelope;
    envelope.sender = "alice@host.example";
    envelope.recipients = {"bob@host.example", "\"odd <name>\"@host.example"};
    envelope.submitter_uid = 1000;
    envelope.arrival_micros = 1'763'756'614'123'456ull;
    return envelope;
}

StateRecord record(StateRecord::Kind kind, size_t index, std::time_t time, std::string code = "",
                   std::string text = "") {
    StateRecord r;
    r.kind = kind;
    r.indexes = {index};
    r.time = time;
    r.code = std::move(code);
    r.text = std::move(text);
    return r;
}

}  // namespace

TEST_CASE("A queue entry's envelope reads back as written, and reads in less", "[queue]") {
    auto text = format_envelope(sample_envelope());
    CHECK(text ==
          "arrival 1763756614.123456\nuid 1000\nsender <alice@host.example>\nrecipient <bob@host.example>\n"
          "recipient <\"odd <name>\"@host.example>\nend\n");
    auto parsed = parse_entry_tail(text);
    REQUIRE(parsed);
    CHECK(parsed->envelope.sender == "alice@host.example");
    CHECK(parsed->envelope.recipients == sample_envelope().recipients);
    CHECK(parsed->envelope.arrival_micros == 1'763'756'614'123'456ull);
    CHECK(parsed->envelope.arrival() == 1'763'756'614);
    CHECK(parsed->envelope.submitter_uid == 1000);
    CHECK(parsed->state.recipients.size() == 2);
    CHECK(parsed->valid_length == text.size());

    Envelope null_sender = sample_envelope();
    null_sender.sender = "";
    auto again = parse_entry_tail(format_envelope(null_sender));
    REQUIRE(again);
    CHECK(again->envelope.sender.empty());
}

TEST_CASE("The first line carries the version and the message size, fixed width", "[queue]") {
    auto header = format_queue_header(1304);
    CHECK(header == "mailroom-queue 2 message 00000000000000001304\n");
    CHECK(header.size() == queue_header_size);
    auto size = parse_queue_header(header);
    REQUIRE(size);
    CHECK(*size == 1304);

    auto wrong_version = parse_queue_header("mailroom-queue 9 message 00000000000000001304\n");
    REQUIRE_FALSE(wrong_version);
    CHECK(wrong_version.error().code.value() == EBADMSG);
    CHECK_THAT(wrong_version.error().context, Catch::Contains("unknown queue entry version"));
    CHECK_FALSE(parse_queue_header("garbage"));
    CHECK_FALSE(parse_queue_header(std::string(46, '\0')));
    CHECK_FALSE(parse_queue_header("mailroom-queue 1 message 0000000000000000130x\n"));
}

TEST_CASE("Per-recipient state: pending, delivered, deferred with reason and next try, failed, notified", "[queue]") {
    std::string tail = format_envelope(sample_envelope());
    auto deferred = record(StateRecord::Kind::deferred, 1, 1000, "4.2.0", "mailbox is locked\nby someone");
    deferred.next_try = 1300;
    tail += format_state_record(record(StateRecord::Kind::delivered, 0, 990, "2.0.0", "delivered to mailbox"));
    tail += format_state_record(deferred);
    CHECK_THAT(tail, Catch::Contains("deferred 1 1000 1300 4.2.0 mailbox is locked by someone\n"));
    auto parsed = parse_entry_tail(tail);
    REQUIRE(parsed);
    const auto& state = parsed->state;
    CHECK(state.recipients[0].phase == RecipientPhase::delivered);
    CHECK(state.recipients[0].done());
    CHECK(state.recipients[1].phase == RecipientPhase::deferred);
    CHECK(state.recipients[1].next_try == 1300);
    CHECK(state.recipients[1].text == "mailbox is locked by someone");
    CHECK(state.recipients[1].attempts == 1);
    CHECK(state.next_try() == 1300);
    CHECK_FALSE(state.all_done());

    tail += format_state_record(record(StateRecord::Kind::failed, 1, 2000, "5.1.1", "user unknown"));
    StateRecord notified;
    notified.kind = StateRecord::Kind::notified;
    notified.indexes = {1};
    notified.time = 2000;
    notified.notice_id = "ABCDEFGHIJKLMNO";
    tail += format_state_record(notified);
    parsed = parse_entry_tail(tail);
    REQUIRE(parsed);
    CHECK(parsed->state.recipients[1].phase == RecipientPhase::failed);
    CHECK(parsed->state.recipients[1].attempts == 2);
    CHECK(parsed->state.all_done());
}

TEST_CASE("A state line torn by a crash is ignored, any other bad line makes the entry corrupt", "[queue]") {
    std::string tail = format_envelope(sample_envelope());
    auto good = format_state_record(record(StateRecord::Kind::delivered, 0, 990, "2.0.0", "ok"));
    auto parsed = parse_entry_tail(tail + good + "deferred 1 10");
    REQUIRE(parsed);
    CHECK(parsed->valid_length == tail.size() + good.size());
    CHECK(parsed->state.recipients[0].phase == RecipientPhase::delivered);
    CHECK(parsed->state.recipients[1].phase == RecipientPhase::pending);

    for (std::string bad : {"delivered x 990 2.0.0 ok\n", "delivered 7 990 2.0.0 ok\n", "frobnicated 0\n",
                            "deferred 0 10 2.0\n", "notified  10 X\n", "requeued 10 extra\n"}) {
        INFO(bad);
        auto r = parse_entry_tail(tail + bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().code.value() == EBADMSG);
    }
}

TEST_CASE("An envelope that is cut short, unknown or incomplete is corrupt", "[queue]") {
    auto full = format_envelope(sample_envelope());
    for (size_t cut = 0; cut < full.size(); ++cut) {
        INFO(cut);
        CHECK_FALSE(parse_entry_tail(full.substr(0, cut)));
    }
    CHECK_FALSE(parse_entry_tail("arrival 1.000000\nuid 0\nsender <>\nend\n"));  // no recipient
    CHECK_FALSE(parse_entry_tail("arrival 1.000000\nuid 0\nsender <>\nrecipient <a@b>\ncolour blue\nend\n"));
    CHECK_FALSE(parse_entry_tail(std::string("arrival 1.0\0\n", 13)));
    CHECK(parse_entry_tail("arrival 1.000000\nuid 0\nsender <>\nrecipient <a@b>\nend\n"));
}

TEST_CASE("requeue makes every deferred recipient due at once", "[queue]") {
    EntryState state;
    state.recipients.resize(2);
    auto deferred = record(StateRecord::Kind::deferred, 0, 100, "4.0.0", "later");
    deferred.next_try = 5000;
    apply_state_record(state, deferred);
    StateRecord requeued;
    requeued.kind = StateRecord::Kind::requeued;
    requeued.time = 200;
    apply_state_record(state, requeued);
    CHECK(state.recipients[0].next_try == 200);
    CHECK(state.recipients[1].phase == RecipientPhase::pending);
    CHECK(state.next_try() == 200);
}

TEST_CASE("An envelope address holding a control character is corrupt, not cleaned", "[queue]") {
    const char with_nul[] = "arrival 1.000000\nuid 0\nsender <a\0b@x>\nrecipient <c@d>\nend\n";
    CHECK_FALSE(parse_entry_tail(std::string(with_nul, sizeof with_nul - 1)));
    CHECK(parse_entry_tail("arrival 1.000000\nuid 0\nsender <ab@x>\nrecipient <c@d>\nend\n"));
    CHECK_FALSE(parse_entry_tail("arrival 1.000000\nuid 0\nsender <a@x>\nrecipient <c\r@d>\nend\n"));
    CHECK_FALSE(parse_entry_tail("arrival 1.000000\nuid 0\nsender <a@x>\nrecipient <c\x7f@d>\nend\n"));
}
