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

#include "core/result.hpp"
#include "core/unique_fd.hpp"
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

// MaildirWriter::deliver in its three steps, for a caller that syncs the files of
// several deliveries together (a delivery agent's batch: delivery_agent.cpp), each
// step taking the outcome of the sync before it:
//   stage(message, info)      folders checked (or made), tmp/NAME written; fsync data_fd()
//   publish(data_synced)      tmp/NAME linked into new/; fsync new_folder_fd()
//   settle(new_synced)        the tmp/ name dropped; a failed sync takes new/NAME back out
// A step that is not ok ends the delivery; the destructor removes tmp/NAME unless
// settle() succeeded. Every Status is the one deliver() would have returned.
class MaildirDelivery {
public:
    MaildirDelivery() = default;
    MaildirDelivery(MaildirDelivery&& other) noexcept;
    MaildirDelivery& operator=(MaildirDelivery&&) = delete;
    MaildirDelivery(const MaildirDelivery&) = delete;
    ~MaildirDelivery();

    Status stage(const Message& message, const DeliveryInfo& info);
    int data_fd() const { return file_.get(); }
    Status publish(core::Result<void> data_synced);
    int new_folder_fd() const { return fresh_.get(); }
    Status settle(core::Result<void> new_synced, std::string* delivered_path = nullptr);

    // What an error of each sync names: "FOLDER/tmp/NAME", "folder FOLDER/new".
    std::string tmp_shown() const;
    std::string new_folder_shown() const;

private:
    void remove_tmp();

    std::string folder_, host_, name_, new_name_;
    std::uint64_t size_ = 0;
    core::UniqueFd tmp_, fresh_, file_;
    bool tmp_armed_ = false;  // tmp/NAME exists and is ours to remove
};

// HOST part of a Maildir name: '/' → "\057", ':' → "\072" (':' starts the info part,
// '/' would make a path). An empty host falls back to gethostname().
std::string maildir_host(std::string_view hostname);

// A fresh "TIME.M<usec>P<pid>Q<counter>.HOST,S=SIZE" name; every call in this process
// returns a different name, and no other live process can make the same one.
std::string maildir_unique_name(std::string_view escaped_host, std::uint64_t size);

}  // namespace mailroom::mail
