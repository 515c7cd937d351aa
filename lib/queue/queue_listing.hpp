// Queue listing: what `mailq` prints for each queue entry, either in the layout of
// Postfix's mailq (sendmail -bp) or as one JSON object a line, the facts of Postfix's
// `postqueue -j` and more (docs/mailq.md has every column and field).
//
// The text layout, column by column as SPEC section 1 shows it:
//   -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
//   ID+mark     SIZE     Sat Nov 21 20:23:34  sender               "%-11s %8ld %20.20s %s"
//                                (reason, right-aligned to column 76)   "%*s(%s)", 76 - length
//                                             recipient, column 43, one a line
//   <blank line after each entry>
//   -- N Kbytes in M Requests.                (or "Mail queue is empty")
// The mark is `!` for an entry on hold, `*` for one a runner holds locked now. Only
// recipients not yet done are listed; a reason line is printed when it differs from
// the previous recipient's, as Postfix does (so one reason heads the recipients it
// applies to), and is never wrapped: a reason longer than 76 starts in column 1.
//
// Invariants: every byte taken from an entry (addresses, reasons) is printable before
// it reaches a terminal: control bytes and invalid UTF-8 become '?' in the text
// layout and escapes (\u00XX, \ufffd) in JSON, so a queued address or a remote
// server's reply can neither drive the terminal nor break a JSON reader.
// list_queue walks the spool for mailq: it holds only the entries' names (sorted,
// so the listing is in arrival order), and reads and formats one entry at a time.
// Must never: hold more than one entry's envelope (mailq streams 50,000 entries),
// stop at an entry it cannot read, or change anything in the spool.
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json_text.hpp"
#include "queue/spool.hpp"

namespace mailroom::mail {

enum class ListingFormat { text, json };

class QueueListing {
public:
    explicit QueueListing(ListingFormat format) : format_(format) {}

    // Appends the lines of one entry to out (the column heading before the first).
    void add(const EntrySnapshot& entry, std::string& out);
    // An entry that exists but cannot be read (corrupt, unreadable): listed with
    // its reason instead of its envelope, and counted, never skipped.
    void add_unreadable(std::string_view id, QueueFolder folder, std::string_view reason, std::string& out);
    // What ends the listing: the "-- N Kbytes in M Requests." trailer, or "Mail
    // queue is empty"; nothing in JSON (an empty queue prints no line at all there).
    std::string finish() const;

    uint64_t requests() const { return requests_; }

private:
    void begin_entry(std::string& out);

    ListingFormat format_;
    uint64_t requests_ = 0;
    uint64_t bytes_ = 0;
};

struct QueuedName {
    std::string id;
    QueueFolder folder = QueueFolder::queue;
};
// The entries of these folders sorted by queue ID (arrival order), each ID once
// (an entry moved between two folders while they were read shows up in both).
core::Result<std::vector<QueuedName>> sorted_entry_names(const Spool& spool, const std::vector<QueueFolder>& folders);

// Lists queue/ and hold/ in queue ID order through write, in chunks; write returns
// false to stop (the reader went away). An entry that vanished meanwhile is skipped
// (or found in the folder it moved to); one that cannot be read is listed as such.
// Error: a folder could not be read. The value: how many entries were listed.
core::Result<uint64_t> list_queue(const Spool& spool, ListingFormat format,
                                  const std::function<bool(std::string_view)>& write);

// The pieces, exposed for their tests.

// "Sat Nov 21 20:23:34": asctime()'s day, date and time in local time, without
// the year (mailq's %20.20s of asctime cuts it off).
std::string mailq_arrival(std::time_t when);
// "QUEUEID!" / "QUEUEID*" / "QUEUEID".
std::string mailq_id_with_mark(const EntrySnapshot& entry);
// Postfix's queue names: "hold", "active" (being delivered now), "deferred" (some
// recipient was tried), "incoming" (in queue/, never tried yet).
const char* json_queue_name(const EntrySnapshot& entry);
// Control bytes, C1 controls and bytes that are not valid UTF-8 replaced by '?'.
std::string printable_text(std::string_view text);
using core::json_quote;

}  // namespace mailroom::mail
