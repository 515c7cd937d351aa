// MailboxWriter: the interface of the last step, appending one Message to one
// mailbox. Implementations (MboxWriter, MaildirWriter) hold no state between
// deliveries and report every outcome as a Status, never by throwing.
//
// The caller has already switched to the mailbox owner's credentials (or is the
// owner), checked for mail loops, and decided the path. The writer prepends
// delivery_headers() and must, on any failure, leave the mailbox as it was.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <ctime>
#include <string>
#include <vector>

#include "mail/message.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

enum class LockKind { fcntl, dotlock };

struct LockSettings {
    std::vector<LockKind> order{LockKind::fcntl, LockKind::dotlock};
    std::chrono::milliseconds timeout{60'000};
    // A dotlock older than this is removed as stale (SPEC: 5 minutes).
    std::chrono::seconds stale_dotlock_age{300};
};

struct DeliveryInfo {
    std::string sender;     // envelope sender; "" is the null sender <>
    std::string recipient;  // user@domain, the Delivered-To value
    std::string path;       // mbox file, or Maildir folder (with or without trailing '/')
    uid_t uid = 0;          // the mailbox owner: an existing mbox must belong to this uid
    gid_t gid = 0;
    std::string hostname;   // for Maildir file names
    std::time_t arrival = 0;  // for the mbox "From " line
    LockSettings locks;
};

// "Return-Path: <sender>\nDelivered-To: recipient\n"
std::string delivery_headers(const DeliveryInfo& info);

class MailboxWriter {
public:
    virtual ~MailboxWriter() = default;
    virtual Status deliver(const Message& message, const DeliveryInfo& info) const = 0;
};

}  // namespace mailroom::mail
