// bounce: composes the failure and delay notices of SPEC section 8, RFC 3464 delivery
// status notifications inside an RFC 6522 (formerly 3462) multipart/report:
//   1. text/plain, for people: what happened to each recipient and why;
//   2. message/delivery-status, for programs: Reporting-MTA, Arrival-Date and
//      X-Mailroom-Queue-ID, then per recipient Original-Recipient (when it differs),
//      Final-Recipient, Action (failed|delayed), Status, Remote-MTA, Diagnostic-Code,
//      Last-Attempt-Date and, for delays, Will-Retry-Until, in RFC 3464's grammar order
//      (so the extension field X-Mailroom-Queue-ID comes after Arrival-Date);
//   3. the original: message/rfc822 when its size is at most full_message_limit, else
//      text/rfc822-headers with its header section only. The header section is capped
//      at 256 KB, cut at the end of a line, and the human part then says it was cut.
// The caller (the queue runner) queues the result with the null sender, so a notice
// can never be answered by another notice; Auto-Submitted: auto-replied tells
// vacation programs and other responders the same (RFC 3834).
//
// Invariants: memory use is bounded by full_message_limit + 256 KB of the original
// (read through Message::reader, never whole when large) plus the report itself; the
// MIME boundary occurs nowhere in any part; every header field and report field
// stays in its syntax whatever the diagnostic texts hold (no CR, no control
// characters, folded, lines under 998 octets); Content-Transfer-Encoding says 8bit on
// the top level and on each part that has 8-bit octets, 7bit otherwise.
// Never: write files, queue anything, or decide whom to notify (callers never pass
// the null sender; postmaster copies of double bounces are the caller's choice).
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "mail/message.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

enum class NoticeKind { failure, delay };

struct ReportedRecipient {
    std::string address;   // final recipient (addr-spec)
    std::string original;  // the address the sender used when different (an alias), else empty
    Status status;         // last outcome: 5.x.y or 4.x.y (an expired deferral) for a failure, 4.x.y for a delay
    // Host that gave the status; empty for local delivery. With a remote host, a status
    // text that starts with a reply number ("550 5.1.1 ...") is that host's reply and is
    // reported as "Diagnostic-Code: smtp; ..."; any other text (a local reason, a
    // connection that timed out) as "x-unix; ...": no reply number is made up.
    std::string remote_mta;
    std::time_t last_attempt = 0;  // 0: no Last-Attempt-Date
};

struct NoticeRequest {
    NoticeKind kind = NoticeKind::failure;
    std::string reporting_host;   // myhostname: From: MAILER-DAEMON@host, Reporting-MTA: dns; host
    std::string queue_id;         // the original message's queue id
    std::string original_sender;  // the notice's To: (never empty: the null sender is never notified)
    std::string notice_queue_id;  // the notice's own queue id, for its Message-ID and boundary
    std::time_t arrival = 0;      // Arrival-Date (0: none)
    std::time_t now = 0;          // Date: and the Message-ID's time stamp
    std::time_t retry_until = 0;  // delay notices: Will-Retry-Until (0: none)
    std::vector<ReportedRecipient> recipients;
    // The whole original is returned when it is at most this big, else its header
    // section only. 0 returns headers only (e.g. for delay notices, as Postfix does).
    uint64_t full_message_limit = 64 * 1024;
    std::string postmaster_note;  // optional extra paragraph for the human part
};

// The largest header section a notice includes; beyond it the section is cut.
inline constexpr size_t notice_header_section_cap = 256 * 1024;

// The complete notice, header and body with LF line ends, ready to queue.
// An input error when the request cannot make a valid notice (no recipients, an
// empty sender, host or notice id, a success status, or a 5.x.y in a delay notice);
// a system error when the original cannot be read.
core::Result<std::string> compose_notice(const NoticeRequest& request, const Message& original);

}  // namespace mailroom::mail
