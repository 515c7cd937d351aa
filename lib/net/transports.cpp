#include "net/transports.hpp"

#include "net/lmtp_client.hpp"

namespace mailroom::net {

core::Result<void> attach_transports(mail::RunnerContext& context, const core::Config& config) {
    const std::string& local = config.str("local_transport");
    if (local == "local") return {};
    auto destination = LmtpDestination::parse(local);
    if (!destination) return core::unexpected(destination.error());
    context.mailbox_transport =
        std::make_shared<LmtpClient>(std::move(*destination), config.str("myhostname"), config.duration("smtpd_timeout"));
    return {};
}

}  // namespace mailroom::net
