// WriteJob: one mailbox or file write, everything the writer needs but the message,
// in a form that crosses a process boundary. The launcher builds it from a Target;
// a delivery child or a delivery agent (delivery/delivery_agents.hpp) runs it as the
// user. The request encoding is the agent protocol's (docs/delivery-model.md):
// NUL-separated fields in a fixed order, a version first, the message's descriptor
// passed beside it; every field is checked on the way in.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "core/subprocess.hpp"
#include "delivery/mailbox_location.hpp"
#include "delivery/mailbox_writer.hpp"
#include "mail/message.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

struct WriteJob {
    MailboxFormat format = MailboxFormat::mbox;  // a file target is an mbox
    DeliveryInfo info;
};

// Runs the writer the job names, in this process and with its rights.
Status run_write_job(const WriteJob& job, const Message& message);

// A request: the job and where the message lies in the descriptor sent with it.
struct WriteRequest {
    WriteJob job;
    uint64_t offset = 0;
    uint64_t size = 0;
};

std::string encode_write_request(const WriteRequest& request);
core::Result<WriteRequest> decode_write_request(std::string_view packet);

// The one line a writer reports its Status in: "X.Y.Z text\n".
std::string writer_report_line(const Status& status);

// What a writer process that ended without a report line came to (timed out,
// killed, exited): always a temporary failure, the write may be tried again.
Status writer_death(const core::SubprocessResult& result, std::chrono::seconds timeout);

}  // namespace mailroom::mail
