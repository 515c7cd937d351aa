// Queue submission: one message read from a descriptor (sendmail's stdin),
// passed through the SubmissionFilter into the queue's FrontDoor (front_door.hpp),
// and committed with its envelope. The step between sendmail's options and the
// durable queue entry.
//
// Invariants: an entry is committed only when the whole input was read, every
// recipient parsed, and the size is within the limit; on any failure the
// temporary file is removed (nothing partial stays in the spool).
// Must never: commit an entry without recipients, or report success before the
// entry is on stable storage (QueueWriter::commit).
#pragma once

#include <string>
#include <vector>

#include "core/result.hpp"
#include "mail/submission.hpp"
#include "queue/spool.hpp"

namespace mailroom::mail {

struct SubmitRequest {
    SubmissionSettings filter;        // queue_id and now are filled in here
    std::string sender;               // "" = null sender, already parsed
    std::vector<std::string> recipients;  // command-line recipients, already parsed
    // Appended to a recipient or sender without a domain (Postfix's
    // append_at_myorigin), so that "bob" and "bob@host" are one address.
    std::string default_domain;
};

struct Submitted {
    std::string id;
    uint64_t size = 0;
    size_t recipients = 0;
    std::string message_id;
};

// Errors: errno EMSGSIZE (over message_size_limit: exit 73), EDESTADDRREQ (no
// recipient at all), an input error for a bad -t address (exit 65), any other
// errno from the spool (exit 75).
core::Result<Submitted> submit_message(const Spool& spool, SubmitRequest request, int input_fd);

}  // namespace mailroom::mail
