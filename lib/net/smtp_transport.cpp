#include "net/smtp_transport.hpp"

#include <unistd.h>

#include <algorithm>
#include <ctime>

#include <fmt/format.h>

namespace mailroom::net {

using mail::Status;

namespace {

std::string lower(std::string_view text) {
    std::string out(text);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// A host as a name for texts and TLS: "[192.0.2.1]" is 192.0.2.1.
std::string bare_host(const std::string& host) {
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
    return host;
}

uint64_t next_seed() {
    static uint64_t counter = 0;  // per process: only varies the MX shuffle
    return (static_cast<uint64_t>(::getpid()) << 32) ^ static_cast<uint64_t>(std::time(nullptr)) ^ (++counter * 0x9E3779B97F4A7C15ull);
}

}  // namespace

SmtpTransport::SmtpTransport(SmtpSettings settings, std::unique_ptr<Resolver> resolver)
    : settings_(std::move(settings)), resolver_(std::move(resolver)), owner_(::getpid()) {}

SmtpTransport::~SmtpTransport() {
    for (auto& kept : kept_) {
        if (owner_ == ::getpid()) kept.client->quit();
        else kept.client->forget();
    }
}

std::string SmtpTransport::destination(std::string_view domain) const {
    // With a relayhost every remote recipient goes the same way: one group.
    if (settings_.relayhost) return "[relayhost]";
    return lower(domain);
}

ClientSettings SmtpTransport::client_settings(const RemoteHop& hop, const std::string& address,
                                              const SocketAddress& socket) const {
    ClientSettings s;
    s.dialect = Dialect::smtp;
    s.helo_name = settings_.helo_name;
    s.timeout = settings_.timeout;
    s.relay = fmt::format("{}[{}]", bare_host(hop.host), address);
    s.connect_relay = fmt::format("{}:{}", s.relay, hop.port);
    s.tls_level = settings_.tls_level;
    s.tls = settings_.tls;
    // A relayhost given as an address literal is verified against that address.
    s.tls_peer_name = bare_host(hop.host);
    if (settings_.relayhost && settings_.passwords) {
        if (auto found = settings_.passwords->find(*settings_.relayhost))
            s.login = ClientSettings::Login{found->user, found->password};
    }
    s.auth_in_clear = socket.is_loopback();
    return s;
}

mail::TransportResult SmtpTransport::deliver(const mail::Message& message, const mail::Envelope& envelope,
                                             std::string_view domain,
                                             const std::vector<mail::TransportRecipient>& recipients) {
    mail::TransportResult result;
    result.relay = "none";
    result.relays.assign(recipients.size(), "none");
    if (owner_ != ::getpid()) {
        // A forked worker: the parent's connections are not ours to use or to close.
        for (auto& kept : kept_) kept.client->forget();
        kept_.clear();
        owner_ = ::getpid();
    }
    const std::string key = destination(domain);
    std::vector<std::optional<Status>> final(recipients.size());
    std::vector<std::optional<Status>> last_temp(recipients.size());

    auto pending = [&] {
        std::vector<size_t> out;
        for (size_t i = 0; i < recipients.size(); ++i) {
            if (!final[i]) out.push_back(i);
        }
        return out;
    };
    // The transaction's answers: 2xx and 5xx are final; 4xx (and no answer) final
    // only at the last server, else left for the next one.
    auto transact = [&](MailClient& client, const std::string& relay, bool last) {
        std::vector<size_t> which = pending();
        std::vector<mail::TransportRecipient> subset;
        for (size_t i : which) subset.push_back(recipients[i]);
        TransactionOutcome sent = client.transact(message, envelope, subset);
        if (sent.reset_failed) return false;
        for (size_t j = 0; j < which.size(); ++j) {
            const size_t i = which[j];
            Status status = sent.statuses[j]
                                ? std::move(*sent.statuses[j])
                                : Status::temp("4.4.2", fmt::format("host {}: {} during the SMTP dialogue",
                                                                    client.settings().relay,
                                                                    sent.lost.empty() ? "no answer" : sent.lost));
            result.relays[i] = relay;
            if (status.is_temporary() && !last) last_temp[i] = std::move(status);
            else final[i] = std::move(status);
        }
        return true;
    };
    auto keep = [&](std::string relay, std::unique_ptr<MailClient> client) {
        kept_.push_back(Kept{key, std::move(relay), std::move(client)});
        if (kept_.size() > max_kept) {
            kept_.front().client->quit();
            kept_.erase(kept_.begin());
        }
    };

    // A connection kept from an earlier message to this destination goes first.
    size_t sessions = 0;
    std::string skip;
    if (auto it = std::find_if(kept_.begin(), kept_.end(), [&](const Kept& k) { return k.destination == key; });
        it != kept_.end()) {
        Kept kept = std::move(*it);
        kept_.erase(it);
        if (kept.client->is_open() && transact(*kept.client, kept.relay, false)) {
            ++sessions;
            skip = kept.relay;
            if (kept.client->is_open()) keep(kept.relay, std::move(kept.client));
        } else {
            kept.client.reset();  // closed, or its RSET failed: nothing was sent on it
        }
    }

    if (!pending().empty()) {
        RoutePlan plan = plan_route(*resolver_, domain, settings_.relayhost, settings_.helo_name, next_seed(),
                                    settings_.my_addresses);
        if (plan.failure) {
            for (size_t i : pending()) final[i] = *plan.failure;
        }
        // The addresses to try, hop by hop, at most address_limit.
        struct Try {
            const RemoteHop* hop;
            std::string address;
        };
        std::vector<Try> tries;
        for (const RemoteHop& hop : plan.hops) {
            for (const std::string& address : hop.addresses) {
                if (tries.size() >= settings_.address_limit) break;
                if (fmt::format("{}[{}]:{}", bare_host(hop.host), address, hop.port) == skip) continue;
                tries.push_back(Try{&hop, address});
            }
        }
        for (size_t t = 0; t < tries.size() && !pending().empty() && sessions < settings_.session_limit; ++t) {
            const RemoteHop& hop = *tries[t].hop;
            const std::string& address = tries[t].address;
            const bool last = t + 1 == tries.size() || sessions + 1 >= settings_.session_limit;
            const std::string relay = fmt::format("{}[{}]:{}", bare_host(hop.host), address, hop.port);
            auto socket = SocketAddress::numeric(address, hop.port);
            if (!socket) {
                for (size_t i : pending())
                    last_temp[i] = Status::temp("4.4.1", fmt::format("bad address {} for host {}", address, hop.host));
                continue;
            }
            ClientSettings settings = client_settings(hop, address, *socket);
            auto client = std::make_unique<MailClient>(settings);
            OpenOutcome opened = client->open({*socket});
            if (opened.kind == OpenOutcome::Kind::tls_failed) {
                // At `may` a failed handshake costs the encryption, not the delivery:
                // the same address once more, in plaintext (as Postfix).
                settings.tls_level = TlsLevel::none;
                client = std::make_unique<MailClient>(settings);
                opened = client->open({*socket});
            }
            if (opened.kind == OpenOutcome::Kind::connect_failed) {
                for (size_t i : pending()) {
                    last_temp[i] = *opened.status;
                    result.relays[i] = "none";
                }
                continue;
            }
            ++sessions;
            if (opened.kind != OpenOutcome::Kind::open) {
                const Status& status = *opened.status;
                for (size_t i : pending()) {
                    result.relays[i] = relay;
                    if (status.is_temporary() && !last) last_temp[i] = status;
                    else final[i] = status;
                }
                continue;
            }
            transact(*client, relay, last);
            if (client->is_open()) keep(relay, std::move(client));
        }
        for (size_t i : pending()) {
            final[i] = last_temp[i] ? std::move(*last_temp[i])
                                    : Status::temp("4.4.4", fmt::format("no usable address for {}", domain));
        }
    }
    for (auto& status : final) result.statuses.push_back(std::move(*status));
    return result;
}

}  // namespace mailroom::net
