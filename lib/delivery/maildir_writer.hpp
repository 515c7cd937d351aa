// MaildirWriter: delivers one Message into a Maildir (https://cr.yp.to/proto/maildir.html):
// write tmp/NAME, fsync, link to new/NAME, fsync new/, unlink tmp/NAME. No lock.
//
// Invariants: NAME is TIME.M<usec>P<pid>Q<counter>.HOST,S=SIZE, unique within the process
// (a process-wide counter) and across processes (pid), with '/' and ':' in HOST written
// as \057 and \072; S= is exactly the number of bytes in the file (delivery headers +
// content, which is never altered). tmp/, new/ and cur/ are created 0700 as needed.
// Must never: follow a symlink at the Maildir folder, tmp/ or new/; write into folders
// not owned by info.uid (both are refused 4.2.0, so the mail waits for the admin);
// leave a file in tmp/ or new/ when it reports a failure; hold the message in memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "delivery/mailbox_writer.hpp"

namespace mailroom::mail {

class MaildirWriter final : public MailboxWriter {
public:
    Status deliver(const Message& message, const DeliveryInfo& info) const override;
    // As deliver(); on success *delivered_path (when not null) is set to the full path
    // of the file in new/, for logging and tests.
    Status deliver(const Message& message, const DeliveryInfo& info,
                   std::string* delivered_path) const;
};

// HOST part of a Maildir name: '/' → "\057", ':' → "\072" (':' starts the info part,
// '/' would make a path). An empty host falls back to gethostname().
std::string maildir_host(std::string_view hostname);

// A fresh "TIME.M<usec>P<pid>Q<counter>.HOST,S=SIZE" name; every call in this process
// returns a different name, and no other live process can make the same one.
std::string maildir_unique_name(std::string_view escaped_host, std::uint64_t size);

}  // namespace mailroom::mail
