// MboxWriter: appends one message to an mbox file (SPEC 4): a `From sender date` line,
// Return-Path and Delivered-To, the content with mboxrd quoting, one empty line.
//
// Invariants: the mailbox is opened without following a symlink and must be a regular
// file with one link, owned by info.uid; it is created 0600 and, when we are root,
// chowned to info.uid/info.gid. Locks are taken in info.locks.order and held until the
// append is fsynced. Before appending, the old size is recorded with the mailbox's
// device and inode (in the dotlock, or in the sidecar PATH.mailroom-append when there is
// no dotlock) so that a writer killed mid-append is repaired by the next delivery
// (docs/mbox.md). On any failure the mailbox is truncated back to its old size.
// A dotlock that should go but that we may not remove (another user's, in a sticky
// folder) is passed over when mailbox_lock includes fcntl, else the delivery defers.
// Must never: report success before fsync, act on a live writer's record, act on a
// record another user could have made (mail/mbox_repair.hpp judge_record), hold the
// message in memory (it streams in 64 KB chunks), throw. Records it ignores and a
// passed-over dotlock are named, with the reason, in the success text.
//
// Refusals (symlink, hard links, wrong owner, not a regular file) are *temporary*
// (4.2.0): they are configuration problems an admin fixes, and deferring keeps the
// mail. Postfix's local(8) bounces some of these instead; we prefer not losing mail.
#pragma once

#include <ctime>
#include <string>
#include <string_view>

#include "delivery/mailbox_writer.hpp"

namespace mailroom::mail {

// "From SENDER Sat Nov 21 20:23:34 2026\n": asctime form in local time, as Postfix and
// mail(1) write it. An empty sender is MAILER-DAEMON; whitespace and control
// characters in the sender become '_' so that the line stays one line of two fields.
std::string mbox_from_line(std::string_view sender, std::time_t when);

// mboxrd quoting over a stream of chunks: every line matching `^>*From ` gets one more
// '>'. Lines may span chunks; memory is constant (at most 4 bytes held back, however
// long the line or the run of '>'), because the extra '>' goes just before "From ".
class MboxEscaper {
public:
    // Appends the quoted form of chunk to out.
    void feed(std::string_view chunk, std::string& out);
    // Flushes held-back bytes at the end of the message.
    void finish(std::string& out);
    // True when nothing was fed or the last byte fed was '\n'.
    bool at_line_start() const { return at_line_start_; }

private:
    enum class State { line_start, matching, body };
    State state_ = State::line_start;
    size_t matched_ = 0;  // bytes of "From " seen in state matching
    bool at_line_start_ = true;
};

class MboxWriter final : public MailboxWriter {
public:
    Status deliver(const Message& message, const DeliveryInfo& info) const override;
};

}  // namespace mailroom::mail
