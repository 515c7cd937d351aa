// The queue entry format (docs/spool.md): what one file in the spool holds, as
// text that reads in `less`, and the per-recipient state folded from its log.
//
//   mailroom-queue 2 message 00000000000000001304   first line, fixed width
//   <the message, exactly that many bytes>
//   arrival 1763756614.123456                          envelope, written once
//   uid 1000
//   sender <alice@host.example>
//   protocol ESMTP                                     optional lines, fixed order
//   recipient <team@host.example> notify=FAILURE
//   end
//   deferred 0 1763756620 1763756920 4.2.0 aliases unreadable    state log, appended
//   leaf 1 0 mailbox <bob@host.example> aliases:12 - bob         expansion group,
//   expanded 0 1763757000 1                                      appended whole
//   delivered 1 1763757001 2.0.0 delivered to mailbox
//
// The envelope and the state log sit together after the message, so a reader
// that only needs them (mailq, the scheduler) reads the first line and the tail.
// Version 1 files (no optional envelope lines, no leaves) are still read; a
// version 2 line in a version 1 file is corruption, so a v1 entry is upgraded
// (its version byte rewritten) before its first expansion is appended.
// Invariants: a file that does not start with the exact first line of a known
// version, is shorter than its message, or has no "end" after the envelope is
// corrupt (the caller quarantines it). A log line without its final newline, and
// leaf records not yet closed by their "expanded" record, are an append torn by
// a crash and ignored; every other line must parse. State-record texts never
// hold CR, LF or NUL (they are replaced by spaces when formatted); the other
// fields are checked (check_envelope, check_expansion) and refused, not cleaned.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "delivery/leaf.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

constexpr int queue_format_version = 2;        // what new entries are written as
constexpr int queue_oldest_format_version = 1;  // still read
constexpr size_t queue_header_size = 46;  // "mailroom-queue 2 message " + 20 digits + "\n"
constexpr size_t queue_version_offset = 15;  // the one version digit in the first line

// RFC 3461 facts given with one RCPT TO (version 2).
struct RecipientDsn {
    // NOTIFY: 0 when the client gave none (RFC 3461 then means FAILURE,DELAY);
    // else notify_never alone, or a set of success, failure and delay.
    static constexpr unsigned notify_never = 1, notify_success = 2, notify_failure = 4, notify_delay = 8;
    unsigned notify = 0;
    std::string orcpt;  // ORCPT as given, "addr-type;xtext" (e.g. "rfc822;bob@x"); "" when none

    // Whether a notice of this kind (notify_success, _failure, _delay) is wanted.
    bool wants(unsigned what) const {
        return notify == 0 ? (what == notify_failure || what == notify_delay) : (notify & what) != 0;
    }
    bool empty() const { return notify == 0 && orcpt.empty(); }
    bool operator==(const RecipientDsn&) const = default;
};

enum class DsnReturn { unspecified, full, hdrs };  // RFC 3461 RET

struct Envelope {
    std::string sender;  // "" is the null sender <>
    std::vector<std::string> recipients;
    uid_t submitter_uid = 0;
    uint64_t arrival_micros = 0;

    // Version 2, all optional ("" / unspecified: no line is written).
    std::vector<RecipientDsn> recipient_dsn;  // parallel to recipients; may be shorter (the rest: none)
    DsnReturn ret = DsnReturn::unspecified;
    std::string envid;           // RFC 3461 ENVID, xtext as given
    std::string client_name;     // the client's verified host name or "unknown"; "" with no client line
    std::string client_address;  // its IP address (set with client_name)
    std::string helo;            // the HELO/EHLO/LHLO argument
    std::string protocol;        // SMTP, ESMTP, ESMTPS, ESMTPSA, LMTP, local... (docs/spool.md)
    std::string auth;            // the SASL-authenticated user
    std::string tls_protocol;    // e.g. TLSv1.3 (set with tls_cipher)
    std::string tls_cipher;      // e.g. TLS_AES_256_GCM_SHA384

    std::time_t arrival() const { return static_cast<std::time_t>(arrival_micros / 1'000'000); }
    // The DSN facts of recipient i (empty ones when recipient_dsn is shorter).
    const RecipientDsn& dsn(size_t i) const;
};

struct QueueHeader {
    int version = queue_format_version;
    uint64_t message_size = 0;
};

// The fixed-width first line for a message of `message_size` bytes.
std::string format_queue_header(uint64_t message_size, int version = queue_format_version);
// The version and message size from a first line; an error when it is not one of a version we read.
core::Result<QueueHeader> parse_queue_first_line(std::string_view header);
// The message size alone (any version we read).
core::Result<uint64_t> parse_queue_header(std::string_view header);

// The envelope as written at commit (always the current version's lines).
// Call check_envelope first: a field it refuses would make the entry unreadable.
std::string format_envelope(const Envelope& envelope);
// EINVAL with the reason when a field would not read back as written (a control
// character, a space where none may be, an over-long or malformed value).
core::Result<void> check_envelope(const Envelope& envelope);

// The RFC 3461 checks the entry applies, for the SMTP/LMTP door to apply the same:
// NOTIFY's value ("NEVER" or a list of SUCCESS, FAILURE, DELAY; any case) as
// RecipientDsn::notify bits, nullopt when it is not one; its canonical text.
std::optional<unsigned> parse_dsn_notify(std::string_view value);
std::string format_dsn_notify(unsigned notify);
bool is_valid_orcpt(std::string_view value);  // addr-type ";" xtext, at most 500 octets
bool is_valid_envid(std::string_view value);  // xtext, at most 100 octets

// One event in the state log. `index` is a recipient's position in the envelope,
// or the index of a leaf (an expansion target, below).
struct StateRecord {
    enum class Kind {
        delivered,  // index, time, status
        deferred,   // index, time, next_try, status
        failed,     // index, time, status
        notified,   // indexes, time, notice_id: their failure notice is queued (or "-": none sent)
        warned,     // time, notice_id: the one delay notice is queued
        requeued,   // time: due now, deferred recipients retried at once
    };
    Kind kind = Kind::delivered;
    std::vector<size_t> indexes;  // one for per-recipient kinds, one or more for notified
    std::time_t time = 0;
    std::time_t next_try = 0;
    std::string code;  // enhanced status code
    std::string text;
    std::string notice_id;
};

std::string format_state_record(const StateRecord& record);

enum class RecipientPhase { pending, delivered, deferred, failed };

struct RecipientState {
    RecipientPhase phase = RecipientPhase::pending;
    int attempts = 0;
    std::time_t last_try = 0;
    std::time_t next_try = 0;
    std::string code;
    std::string text;
    bool notified = false;  // a failure notice for it is queued

    // Delivered, or failed and its sender told: nothing more to do for it.
    bool done() const {
        return phase == RecipientPhase::delivered || (phase == RecipientPhase::failed && notified);
    }
};

// What an alias or .forward expansion turned a recipient into (version 2).

struct LeafRecord {
    size_t index = 0;      // set by the entry: after the recipients, consecutive in file order
    size_t recipient = 0;  // the original recipient (envelope index) it was expanded from
    LeafKind kind = LeafKind::mailbox;
    std::string address;     // whose expansion named the target (Delivered-To, to=, LOCAL...)
    std::string provenance;  // where it was named: "aliases:12", "/etc/mail/l.inc:3", "~bob/.forward:1", "-"
    std::string owner;       // owner-NAME address that gets its bounces; "" when none
    // mailbox: a user name; file: an absolute path; command: a shell command;
    // remote: an address; error: "5.x.y text". Never the run-as user: that is
    // recomputed from the provenance at delivery.
    std::string target;
    bool operator==(const LeafRecord&) const = default;
};

// One expansion of a recipient: its leaf records and the "expanded" record that closes them.
struct ExpansionRecord {
    size_t recipient = 0;
    std::time_t time = 0;
    std::vector<LeafRecord> leaves;
};

struct LeafState {
    LeafRecord leaf;
    RecipientState state;
    bool superseded = false;  // a later expansion of its recipient replaced it before it was done
};

struct RecipientExpansion {
    bool expanded = false;
    std::time_t time = 0;         // of the latest expansion
    int expansions = 0;           // how many groups were recorded
    std::vector<size_t> current;  // leaf indexes that count now, in file order
    bool requeued = false;        // a `requeued` record follows the latest expansion
};

struct EntryState {
    // recipients[i]: recipient i's own state (for an unexpanded one, its delivery state).
    std::vector<RecipientState> recipients;
    bool warned = false;
    std::time_t requeued = 0;
    // Every leaf recorded: leaves[k] has index recipients.size() + k.
    std::vector<LeafState> leaves;
    // Per recipient (may be shorter than recipients: the rest are not expanded).
    std::vector<RecipientExpansion> expansions;

    // Every recipient done: an unexpanded one itself, an expanded one when all its current leaves are.
    bool all_done() const;
    // The earliest next_try among deferred unexpanded recipients and current leaves (0 when none).
    std::time_t next_try() const;

    bool expanded(size_t recipient) const;
    bool recipient_done(size_t recipient) const;
    // The leaves that count now for an expanded recipient (empty when it is not expanded).
    std::vector<const LeafState*> current_leaves(size_t recipient) const;
    // The leaf with this index, nullptr when there is none.
    const LeafState* leaf(size_t index) const;
    // The state of a recipient or leaf index, nullptr when there is none.
    const RecipientState* target_state(size_t index) const;
    // The index the next leaf record gets.
    size_t next_leaf_index() const { return recipients.size() + leaves.size(); }
};

// What a reader gets from the tail of an entry (everything after the message).
struct ParsedTail {
    Envelope envelope;
    EntryState state;
    uint64_t valid_length = 0;  // bytes up to the end of the last complete record (or group)
    int version = queue_format_version;
};

// tail: the bytes after the message of an entry of this version; every record
// must name a recipient or leaf that exists.
core::Result<ParsedTail> parse_entry_tail(std::string_view tail, int version = queue_format_version);

// Folds one record into a state (the same rule the parser applies).
void apply_state_record(EntryState& state, const StateRecord& record);
// EINVAL with the reason when the record cannot follow this state: an index that
// does not exist, or an expanded recipient's own index (records then name its leaves).
core::Result<void> check_state_record(const EntryState& state, const StateRecord& record);

// The leaf records and the closing "expanded" record, as one text to append at once.
std::string format_expansion(const ExpansionRecord& expansion);
// EINVAL with the reason when the expansion cannot follow this state: recipient
// out of range, leaf indexes not the next ones, a leaf of another recipient, a
// field that would not read back.
core::Result<void> check_expansion(const EntryState& state, const ExpansionRecord& expansion);
// Folds one expansion group in: earlier leaves of the recipient not yet done are superseded.
void apply_expansion(EntryState& state, const ExpansionRecord& expansion);

}  // namespace mailroom::mail
