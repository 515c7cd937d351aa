// The queue entry format (docs/spool.md): what one file in the spool holds, as
// text that reads in `less`, and the per-recipient state folded from its log.
//
//   mailroom-queue 1 message 00000000000000001304   first line, fixed width
//   <the message, exactly that many bytes>
//   arrival 1763756614.123456                          envelope, written once
//   uid 1000
//   sender <alice@host.example>
//   recipient <bob@host.example>
//   end
//   deferred 0 1763756620 1763756920 4.2.0 mailbox is locked    state log, appended
//
// The envelope and the state log sit together after the message, so a reader
// that only needs them (mailq, the scheduler) reads the first line and the tail.
// Invariants: a file that does not start with the exact first line of a known
// version, is shorter than its message, or has no "end" after the envelope is
// corrupt (the caller quarantines it). A state line without its final newline is
// torn by a crash and ignored; every other line must parse. Text fields never
// hold CR, LF or NUL (they are replaced by spaces when formatted).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

constexpr int queue_format_version = 1;
constexpr size_t queue_header_size = 46;  // "mailroom-queue 1 message " + 20 digits + "\n"

struct Envelope {
    std::string sender;  // "" is the null sender <>
    std::vector<std::string> recipients;
    uid_t submitter_uid = 0;
    uint64_t arrival_micros = 0;

    std::time_t arrival() const { return static_cast<std::time_t>(arrival_micros / 1'000'000); }
};

// The fixed-width first line for a message of `message_size` bytes.
std::string format_queue_header(uint64_t message_size);
// The message size from a first line; an error when it is not one this version reads.
core::Result<uint64_t> parse_queue_header(std::string_view header);

std::string format_envelope(const Envelope& envelope);

// One event in the state log. `index` is a recipient's position in the envelope.
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

struct EntryState {
    std::vector<RecipientState> recipients;
    bool warned = false;
    std::time_t requeued = 0;

    bool all_done() const;
    // The earliest next_try among deferred recipients (0 when none is deferred).
    std::time_t next_try() const;
};

// What a reader gets from the tail of an entry (everything after the message).
struct ParsedTail {
    Envelope envelope;
    EntryState state;
    uint64_t valid_length = 0;  // bytes up to the end of the last complete state line
};

// tail: the bytes after the message; recipients of every record must exist.
core::Result<ParsedTail> parse_entry_tail(std::string_view tail);

// Folds one record into a state (the same rule the parser applies).
void apply_state_record(EntryState& state, const StateRecord& record);

}  // namespace mailroom::mail
