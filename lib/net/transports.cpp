#include "net/transports.hpp"

#include "net/lmtp_client.hpp"
#include "net/smtp_transport.hpp"
#include "net/tls_client.hpp"

namespace mailroom::net {

namespace {

core::Result<void> attach_lmtp(mail::RunnerContext& context, const core::Config& config) {
    const std::string& local = config.str("local_transport");
    if (local == "local") return {};
    auto destination = LmtpDestination::parse(local);
    if (!destination) return core::unexpected(destination.error());
    context.mailbox_transport =
        std::make_shared<LmtpClient>(std::move(*destination), config.str("myhostname"), config.duration("smtpd_timeout"));
    return {};
}

core::Result<void> attach_smtp(mail::RunnerContext& context, const core::Config& config) {
    SmtpSettings settings;
    settings.helo_name = config.str("myhostname");
    settings.timeout = config.duration("smtpd_timeout");
    auto relayhost = Relayhost::parse(config.str("relayhost"));
    if (!relayhost) return core::unexpected_input("relayhost: " + relayhost.error().message());
    settings.relayhost = std::move(*relayhost);
    const std::string& level = config.str("smtp_tls_security_level");
    settings.tls_level = level == "none" ? TlsLevel::none : level == "encrypt" ? TlsLevel::encrypt : TlsLevel::may;
    if (settings.tls_level != TlsLevel::none) {
        auto tls = TlsClientContext::make(config.str("smtp_tls_ca_file"));
        if (!tls) return core::unexpected_input("smtp_tls_ca_file: " + tls.error().message());
        settings.tls = std::move(*tls);
    }
    if (const std::string& file = config.str("smtp_sasl_password_file"); !file.empty()) {
        auto passwords = SaslPasswords::load(file);
        if (!passwords) return core::unexpected_input("smtp_sasl_password_file: " + passwords.error().message());
        settings.passwords = std::move(*passwords);
    }
    // The self rule of the route: an MX host that is this host is never tried.
    if (auto mine = interface_addresses()) settings.my_addresses = std::move(*mine);
    auto resolver = SystemResolver::make(config.list("smtp_dns_servers"));
    if (!resolver) return core::unexpected_input("smtp_dns_servers: " + resolver.error().message());
    context.remote_transport = std::make_shared<SmtpTransport>(
        std::move(settings), std::make_unique<SystemResolver>(std::move(*resolver)));
    return {};
}

}  // namespace

core::Result<void> attach_transports(mail::RunnerContext& context, const core::Config& config) {
    if (auto lmtp = attach_lmtp(context, config); !lmtp) return lmtp;
    return attach_smtp(context, config);
}

}  // namespace mailroom::net
