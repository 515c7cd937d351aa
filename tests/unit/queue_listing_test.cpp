// Queue listing: mailq's Postfix layout and its JSON lines, against golden text
// (SPEC section 1, docs/mailq.md).
#include "queue/queue_listing.hpp"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <ctime>
#include <optional>
#include <string>

using namespace mailroom::mail;

namespace {

// The listing prints local time: the golden text is written for UTC.
class UtcZone {
public:
    UtcZone() {
        if (const char* tz = ::getenv("TZ")) old_ = tz;
        ::setenv("TZ", "UTC0", 1);
        ::tzset();
    }
    ~UtcZone() {
        if (old_) ::setenv("TZ", old_->c_str(), 1);
        else ::unsetenv("TZ");
        ::tzset();
    }

private:
    std::optional<std::string> old_;
};

constexpr std::time_t sat_nov_21_20_23_34 = 1795292614;  // 2026, UTC
constexpr std::time_t sat_nov_21_19_02_11 = 1795287731;

EntrySnapshot snapshot(std::string id, uint64_t size, std::time_t arrival, std::string sender,
                       std::vector<std::string> recipients) {
    EntrySnapshot entry;
    entry.id = std::move(id);
    entry.message_size = size;
    entry.envelope.arrival_micros = static_cast<uint64_t>(arrival) * 1'000'000 + 123'456;
    entry.envelope.sender = std::move(sender);
    entry.envelope.recipients = std::move(recipients);
    entry.envelope.submitter_uid = 1000;
    entry.state.recipients.resize(entry.envelope.recipients.size());
    return entry;
}

void defer(EntrySnapshot& entry, size_t index, std::string text, std::time_t next_try = 1795300000) {
    StateRecord record;
    record.kind = StateRecord::Kind::deferred;
    record.indexes = {index};
    record.time = 1795290000;
    record.next_try = next_try;
    record.code = "4.4.1";
    record.text = std::move(text);
    apply_state_record(entry.state, record);
}

void finish_recipient(EntrySnapshot& entry, size_t index, StateRecord::Kind kind) {
    StateRecord record;
    record.kind = kind;
    record.indexes = {index};
    record.time = 1795290000;
    record.code = kind == StateRecord::Kind::delivered ? "2.0.0" : "5.1.1";
    record.text = kind == StateRecord::Kind::delivered ? "delivered to mailbox" : "unknown user: \"zed\"";
    apply_state_record(entry.state, record);
}

std::string listing(ListingFormat format, const std::vector<EntrySnapshot>& entries) {
    QueueListing list(format);
    std::string out;
    for (const auto& entry : entries) list.add(entry, out);
    return out + list.finish();
}

// SPEC's two entries: one being delivered, one on hold with a deferred recipient.
std::vector<EntrySnapshot> spec_entries() {
    auto first = snapshot("QUEUEID", 1304, sat_nov_21_20_23_34, "alice@host.example", {"bob@host.example"});
    first.active = true;
    auto second = snapshot("QUEUEID", 890, sat_nov_21_19_02_11, "carol@host.example", {"dave@elsewhere.example"});
    second.folder = QueueFolder::hold;
    defer(second, 0, "connect to smarthost[127.0.0.1]:2525: Connection refused");
    return {first, second};
}

}  // namespace

TEST_CASE("mailq lists the queue in the Postfix layout of SPEC's example", "[listing]") {
    UtcZone utc;
    // SPEC's example, with the blank line Postfix prints after every entry.
    CHECK(listing(ListingFormat::text, spec_entries()) ==
          "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
          "QUEUEID*        1304 Sat Nov 21 20:23:34  alice@host.example\n"
          "                                          bob@host.example\n"
          "\n"
          "QUEUEID!         890 Sat Nov 21 19:02:11  carol@host.example\n"
          "                    (connect to smarthost[127.0.0.1]:2525: Connection refused)\n"
          "                                          dave@elsewhere.example\n"
          "\n"
          "-- 3 Kbytes in 2 Requests.\n");
}

TEST_CASE("An empty queue prints Mail queue is empty, and JSON prints nothing", "[listing]") {
    CHECK(listing(ListingFormat::text, {}) == "Mail queue is empty\n");
    CHECK(listing(ListingFormat::json, {}).empty());
}

TEST_CASE("mailq's trailer rounds the Kbytes up and says Request for one", "[listing]") {
    UtcZone utc;
    auto entry = snapshot("0ABCDEFGHIJKLMN", 1025, sat_nov_21_20_23_34, "alice@host.example", {"bob@host.example"});
    std::string out = listing(ListingFormat::text, {entry});
    CHECK(out.substr(out.rfind("--")) == "-- 2 Kbytes in 1 Request.\n");
    entry.message_size = 1024;
    out = listing(ListingFormat::text, {entry});
    CHECK(out.substr(out.rfind("--")) == "-- 1 Kbytes in 1 Request.\n");
}

TEST_CASE("A real 15-character queue ID widens its own line, recipients stay in column 43", "[listing]") {
    UtcZone utc;
    auto entry = snapshot("0ABCDEFGHIJKLMN", 4096, sat_nov_21_20_23_34, "", {"bob@host.example"});
    CHECK(listing(ListingFormat::text, {entry}) ==
          "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
          "0ABCDEFGHIJKLMN     4096 Sat Nov 21 20:23:34  MAILER-DAEMON\n"
          "                                          bob@host.example\n"
          "\n"
          "-- 4 Kbytes in 1 Request.\n");
}

TEST_CASE("A reason heads the recipients that share it, an untried one after it gets reason unavailable",
          "[listing]") {
    UtcZone utc;
    auto entry = snapshot("QUEUEID", 100, sat_nov_21_20_23_34, "alice@host.example",
                          {"a@far.example", "b@far.example", "done@host.example", "c@near.example", "new@far.example"});
    defer(entry, 0, "remote delivery not configured");
    defer(entry, 1, "remote delivery not configured");
    finish_recipient(entry, 2, StateRecord::Kind::delivered);
    defer(entry, 3, "mailbox is locked");
    std::string reason_a(76 - 30, ' ');
    std::string reason_c(76 - 17, ' ');
    std::string indent(42, ' ');
    CHECK(listing(ListingFormat::text, {entry}) ==
          "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
          "QUEUEID          100 Sat Nov 21 20:23:34  alice@host.example\n" +
              reason_a + "(remote delivery not configured)\n" + indent + "a@far.example\n" + indent +
              "b@far.example\n" + reason_c + "(mailbox is locked)\n" + indent + "c@near.example\n" +
              std::string(76 - 18, ' ') + "(reason unavailable)\n" + indent + "new@far.example\n" +
              "\n-- 1 Kbytes in 1 Request.\n");
}

TEST_CASE("A reason longer than 76 characters starts in column 1 and is not wrapped", "[listing]") {
    UtcZone utc;
    std::string reason = "Host or domain name not found. Name service error for name=nosuchdomain.invalid type=MX: "
                         "Host not found, try again";
    auto entry = snapshot("QUEUEID", 10, sat_nov_21_20_23_34, "alice@host.example", {"x@nosuchdomain.invalid"});
    defer(entry, 0, reason);
    std::string out = listing(ListingFormat::text, {entry});
    CHECK(out.find("\n(" + reason + ")\n" + std::string(42, ' ') + "x@nosuchdomain.invalid\n") != std::string::npos);
}

TEST_CASE("Control bytes and invalid UTF-8 in a queued address never reach the terminal", "[listing]") {
    CHECK(printable_text("ok \x1b[2Jx") == "ok ?[2Jx");
    CHECK(printable_text("caf\xc3\xa9") == "caf\xc3\xa9");     // valid UTF-8 is kept
    CHECK(printable_text("a\xc2\x9b" "b") == "a?b");          // C1 control CSI
    CHECK(printable_text("a\xff\xc3") == "a??");              // invalid, cut short
    CHECK(printable_text("\xed\xa0\x80") == "???");           // a surrogate is not UTF-8
    CHECK(printable_text("\xe0\x80\xaf") == "???");           // overlong '/'
}

TEST_CASE("JSON strings escape quotes, controls and invalid UTF-8 bytes", "[listing]") {
    CHECK(json_quote("plain") == "\"plain\"");
    CHECK(json_quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(json_quote("l1\nl2\r\t\x01\x7f") == "\"l1\\nl2\\r\\t\\u0001\\u007f\"");
    CHECK(json_quote("caf\xc3\xa9 \xf0\x9f\x93\xa8") == "\"caf\xc3\xa9 \xf0\x9f\x93\xa8\"");
    CHECK(json_quote("bad\xff\xfe") == "\"bad\\ufffd\\ufffd\"");
}

TEST_CASE("mailq --json prints one object a line with Postfix's postqueue -j fields and more", "[listing]") {
    auto entries = spec_entries();
    entries[0].id = "0ABCDEFGHIJKLMN";
    entries[1].id = "0ABCDEFGHIJKLMP";
    entries[1].envelope.recipients.push_back("eve@host.example");
    entries[1].state.recipients.emplace_back();
    finish_recipient(entries[1], 1, StateRecord::Kind::delivered);
    CHECK(listing(ListingFormat::json, entries) ==
          "{\"queue_name\": \"active\", \"queue_id\": \"0ABCDEFGHIJKLMN\", \"arrival_time\": 1795292614, "
          "\"message_size\": 1304, \"forced_expire\": false, \"sender\": \"alice@host.example\", \"held\": false, "
          "\"attempts\": 0, \"next_try\": null, \"recipients\": [{\"address\": \"bob@host.example\", "
          "\"status\": \"pending\", \"reason\": null, \"attempts\": 0, \"next_try\": null}]}\n"
          "{\"queue_name\": \"hold\", \"queue_id\": \"0ABCDEFGHIJKLMP\", \"arrival_time\": 1795287731, "
          "\"message_size\": 890, \"forced_expire\": false, \"sender\": \"carol@host.example\", \"held\": true, "
          "\"attempts\": 1, \"next_try\": null, \"recipients\": [{\"address\": \"dave@elsewhere.example\", "
          "\"status\": \"deferred\", \"delay_reason\": \"connect to smarthost[127.0.0.1]:2525: Connection refused\", "
          "\"reason\": \"connect to smarthost[127.0.0.1]:2525: Connection refused\", \"attempts\": 1, "
          "\"next_try\": 1795300000}, {\"address\": \"eve@host.example\", \"status\": \"delivered\", "
          "\"reason\": null, \"attempts\": 1, \"next_try\": null}]}\n");
}

TEST_CASE("JSON names the queue as postqueue -j does: incoming until tried, then deferred", "[listing]") {
    auto entry = snapshot("0ABCDEFGHIJKLMN", 10, sat_nov_21_20_23_34, "", {"x@far.example"});
    CHECK(std::string(json_queue_name(entry)) == "incoming");
    defer(entry, 0, "remote delivery not configured", 1795299999);
    CHECK(std::string(json_queue_name(entry)) == "deferred");
    std::string out = listing(ListingFormat::json, {entry});
    CHECK(out.find("\"sender\": \"\"") != std::string::npos);
    CHECK(out.find("\"next_try\": 1795299999, \"recipients\"") != std::string::npos);
    entry.active = true;
    CHECK(std::string(json_queue_name(entry)) == "active");
    entry.folder = QueueFolder::hold;
    CHECK(std::string(json_queue_name(entry)) == "hold");
}

TEST_CASE("A failed recipient whose sender is not yet told is listed with its reason", "[listing]") {
    UtcZone utc;
    auto entry = snapshot("QUEUEID", 10, sat_nov_21_20_23_34, "alice@host.example", {"zed@host.example"});
    finish_recipient(entry, 0, StateRecord::Kind::failed);
    std::string out = listing(ListingFormat::text, {entry});
    CHECK(out.find("(unknown user: \"zed\")\n" + std::string(42, ' ') + "zed@host.example\n") != std::string::npos);
    CHECK(listing(ListingFormat::json, {entry}).find("\"status\": \"failed\", \"reason\": \"unknown user: \\\"zed\\\"\"") !=
          std::string::npos);
}

TEST_CASE("An unreadable entry is listed with its reason and counted", "[listing]") {
    QueueListing text(ListingFormat::text);
    std::string out;
    text.add_unreadable("0ABCDEFGHIJKLMN", QueueFolder::hold, "not a mailroom queue entry", out);
    out += text.finish();
    CHECK(out ==
          "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
          "0ABCDEFGHIJKLMN!                               (unreadable: not a mailroom queue entry)\n"
          "\n-- 0 Kbytes in 1 Request.\n");
    QueueListing json(ListingFormat::json);
    out.clear();
    json.add_unreadable("0ABCDEFGHIJKLMN", QueueFolder::queue, "bad \"x\"", out);
    CHECK(out == "{\"queue_name\": \"deferred\", \"queue_id\": \"0ABCDEFGHIJKLMN\", \"held\": false, "
                 "\"unreadable\": \"bad \\\"x\\\"\"}\n");
}

TEST_CASE("The arrival column is asctime's without the year, days padded with a space", "[listing]") {
    UtcZone utc;
    CHECK(mailq_arrival(sat_nov_21_20_23_34) == "Sat Nov 21 20:23:34");
    CHECK(mailq_arrival(1785678543) == "Sun Aug  2 13:49:03");
}

TEST_CASE("An expanded recipient is listed as its leaves not yet done, each with its own reason", "[listing]") {
    auto entry = snapshot("QUEUEID", 100, sat_nov_21_20_23_34, "alice@host.example", {"team@host.example"});
    ExpansionRecord group;
    group.recipient = 0;
    group.time = 1795290000;
    for (const char* member : {"bob@host.example", "carol@host.example"}) {
        LeafRecord leaf;
        leaf.index = entry.state.next_leaf_index() + group.leaves.size();
        leaf.recipient = 0;
        leaf.kind = LeafKind::mailbox;
        leaf.address = member;
        leaf.provenance = "aliases:/etc/aliases:3";
        leaf.target = std::string(member).substr(0, std::string(member).find('@'));
        group.leaves.push_back(leaf);
    }
    apply_expansion(entry.state, group);
    finish_recipient(entry, 1, StateRecord::Kind::delivered);  // bob
    defer(entry, 2, "mailbox is locked");                       // carol
    std::string text = listing(ListingFormat::text, {entry});
    CHECK_THAT(text, Catch::Contains("(mailbox is locked)\n" + std::string(42, ' ') + "carol@host.example\n"));
    CHECK(text.find("bob@host.example") == std::string::npos);
    CHECK(text.find("team@host.example") == std::string::npos);
    std::string json = listing(ListingFormat::json, {entry});
    CHECK_THAT(json, Catch::Contains("{\"address\": \"carol@host.example\", \"status\": \"deferred\", "
                                     "\"orig_address\": \"team@host.example\""));
    CHECK_THAT(json, Catch::Contains("{\"address\": \"bob@host.example\", \"status\": \"delivered\""));
}
