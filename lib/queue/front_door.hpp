// FrontDoor: the queue's side of one incoming transaction, push-style, shared by
// `sendmail` (queue_submission.cpp) and the SMTP listener: set the sender, add
// recipients, feed the message bytes, commit. It owns one QueueWriter (its
// temporary file in tmp/, the queue ID known from open()) and the Envelope being
// built; a door that is destroyed without a successful commit leaves nothing in
// the spool (the QueueWriter removes its temporary file).
//
// Refusals of the envelope steps are Status values (reply codes for SMTP, sysexits
// through Status::to_sysexit); write and commit fail with a core::Error whose errno
// tells why, and status_of() turns it into the Status to answer:
//   EMSGSIZE      over size_limit              perm 5.3.4 (SMTP 552; RFC 3463 "message
//                                              too big for system", Postfix's 552 5.3.4)
//   EDESTADDRREQ  commit with no recipient     perm 5.5.1 (a command out of sequence,
//                                              Postfix's "5.5.1 no valid recipients")
//   no errno      an input error of the caller perm 5.6.0 (its text as it is)
//   other errno   the spool failed             Status::from_error: temporary, never lost
// sendmail does not go through status_of: it maps the errno itself (mta/sendmail.cpp,
// EMSGSIZE → 73, EDESTADDRREQ → 65, EFBIG → 75, other → 75), its documented exit codes.
//
// Invariants: recipients are kept qualified (Postfix's append_at_myorigin), once each
// (the first one's DSN facts are kept), in the order given; the bytes written count
// toward size_limit, and a write that would pass it writes nothing. A write error or a
// failed commit is sticky: every later write and commit returns it.
// Must never: commit without a recipient, report success before QueueWriter::commit
// returned, queue a message over the limit or one with a failed write in it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "mail/status.hpp"
#include "queue/queue_entry.hpp"
#include "queue/spool.hpp"

namespace mailroom::mail {

struct FrontDoorSettings {
    // Appended to a sender or recipient without a domain (Postfix's
    // append_at_myorigin), so that "bob" and "bob@host" are one address; "" = none.
    std::string default_domain;
    size_t max_recipients = 0;  // past it: temp 4.5.3 (RFC 5321 4.5.3.1.10); 0 = no limit
    uint64_t size_limit = 0;    // message_size_limit, bytes written; 0 = no limit
    uint64_t arrival_micros = 0;  // the arrival time; 0 = the time of day at open()
    uid_t submitter_uid = 0;
    bool allow_utf8 = false;  // SMTPUTF8: addresses may hold UTF-8 (this transaction)
};

// What the SMTP listener knows about its client (Envelope's optional lines); a
// field left "" writes no line.
struct ClientFacts {
    std::string name;     // verified host name or "unknown" (with address)
    std::string address;  // IP address
    std::string helo;
    std::string protocol;  // SMTP, ESMTP, ESMTPSA... (docs/spool.md)
    std::string auth;      // the SASL-authenticated user
    std::string tls_protocol, tls_cipher;
};

struct Committed {
    std::string id;
    uint64_t size = 0;      // message bytes queued
    size_t recipients = 0;  // after de-duplication
};

class FrontDoor {
public:
    // Begins the QueueWriter: the queue ID is chosen now (id()), for Received: and
    // Message-ID. The door refers to `spool`, which must outlive it.
    static core::Result<FrontDoor> open(const Spool& spool, FrontDoorSettings settings);

    FrontDoor(FrontDoor&&) = default;
    FrontDoor& operator=(FrontDoor&&) = delete;
    FrontDoor(const FrontDoor&) = delete;

    const std::string& id() const { return writer_.id(); }
    uint64_t arrival_micros() const { return envelope_.arrival_micros; }
    std::time_t arrival() const { return envelope_.arrival(); }

    // MAIL FROM / -f: "" (or "<>") is the null sender. Bad syntax: perm 5.1.7; an ENVID
    // that is not xtext of at most 100 octets: perm 5.5.4. Until called, the sender is
    // the null sender. A later call replaces the sender.
    Status set_sender(std::string_view address, DsnReturn ret = DsnReturn::unspecified, std::string envid = {});
    // RCPT TO / a sendmail recipient: ok 2.1.5, also for a duplicate (dropped, the first
    // kept). Bad syntax or the null path: perm 5.1.3; a bad ORCPT or NOTIFY: perm 5.5.4;
    // one more than max_recipients: temp 4.5.3 (the client may send it again later).
    Status add_recipient(std::string_view address, RecipientDsn dsn = {});
    void set_client(ClientFacts client);

    // Message bytes, as they are to be queued. EMSGSIZE when they would take the
    // message past size_limit (nothing of them is written).
    core::Result<void> write(std::string_view bytes);
    uint64_t size() const { return writer_.size(); }
    size_t recipients() const { return envelope_.recipients.size(); }

    // Makes the entry durable in queue/. EDESTADDRREQ without a recipient (the door
    // stays open: a recipient may still be added); the sticky error of a write. Once
    // committed, the door refuses everything (EINVAL).
    core::Result<Committed> commit();

    // commit() in QueueWriter's three steps, for a caller that runs the two syncs
    // without blocking (the SMTP listener). The same refusals and sticky errors as
    // commit(); an error at any step ends the door as a failed commit() does.
    //   stage_commit()              → the descriptor to fdatasync
    //   publish(data_synced)        → the folder's descriptor to fsync
    //   settle(folder_synced)       → what commit() would have returned
    core::Result<int> stage_commit();
    core::Result<int> publish(core::Result<void> data_synced);
    core::Result<Committed> settle(core::Result<void> folder_synced);

    // The Status to answer for an error of write() or commit() (table above).
    static Status status_of(const core::Error& error);

private:
    core::Result<void> check_commit();
    core::Result<void> failed_step(core::Result<void> step);

    FrontDoor(QueueWriter writer, FrontDoorSettings settings)
        : writer_(std::move(writer)), settings_(std::move(settings)) {}
    QueueWriter writer_;
    FrontDoorSettings settings_;
    Envelope envelope_;
    std::optional<core::Error> error_;  // sticky: a write failed or went past the limit
    bool committed_ = false;
};

// Postfix's append_at_myorigin for an address given as text: its canonical form, with
// @default_domain when it has no domain ("bob" → "bob@host"); text that does not
// parse is returned as it is.
std::string qualified_address(std::string_view given, std::string_view default_domain);

}  // namespace mailroom::mail
