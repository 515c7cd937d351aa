// MaildirBatch: Maildir deliveries made durable together, for a delivery agent that
// has several requests waiting at once (delivery_agent.cpp: one per connection, as
// when the `mta -d` workers all deliver to one busy mailbox).
//
// Why: delivered one after another, each message costs two syncs in a row (its file,
// then new/), and one agent serves a user's mailbox for every worker: on a disk
// where each sync is a device flush, that caps a mailbox's rate. Here the staged
// files are synced at once (core::sync_all: they overlap in the kernel), then linked
// into new/, then each new/ folder is synced once for all the files linked into it.
// Each delivery keeps MaildirDelivery's order (file synced before its link, the
// link synced before success) and its Status is the one deliver() would return.
// Must never: report a delivery before both of its syncs succeeded, or link a file
// whose sync failed.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "delivery/maildir_writer.hpp"

namespace mailroom::mail {

class MaildirBatch {
public:
    // Writes the message into the Maildir's tmp/. A Status when the delivery has
    // ended already (refused or failed: nothing left behind); else it waits for finish().
    std::optional<Status> add(uint64_t tag, const Message& message, const DeliveryInfo& info);
    bool empty() const { return staged_.empty(); }

    struct Outcome {
        uint64_t tag = 0;
        Status status;
    };
    // One outcome per delivery added since the last finish(), told by its tag.
    std::vector<Outcome> finish();
    // new/ folder fsyncs made by the last finish() (one per folder, however many files).
    size_t folder_syncs() const { return folder_syncs_; }

private:
    std::vector<std::pair<uint64_t, MaildirDelivery>> staged_;
    size_t folder_syncs_ = 0;
};

}  // namespace mailroom::mail
