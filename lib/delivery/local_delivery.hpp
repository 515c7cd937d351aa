// Local delivery from outside the queue (mda, later lmtpd): the envelope sender of a
// message handed over, from -f, its From_ line or the caller. The delivery itself
// is a mailbox Target given to the launcher (delivery/launcher.hpp), as the queue
// runner gives it; this header also brings in the launcher and mailbox_location.
#pragma once

#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/users.hpp"
#include "delivery/launcher.hpp"
#include "delivery/mailbox_location.hpp"
#include "delivery/mailbox_writer.hpp"
#include "mail/message.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

core::Result<std::string> envelope_sender(const std::optional<std::string>& given, const Message& message,
                                          std::string_view fallback);

}  // namespace mailroom::mail
