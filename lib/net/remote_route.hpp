// Where a domain's mail goes (SPEC 7 "Remote delivery", docs/remote-delivery.md):
// `relayhost` when it is set, else the domain's MX hosts, as a plan of hops (host,
// addresses, port) for the SMTP client to try in order, or the Status that stops the
// delivery before any connection. DNS questions go through a Resolver (dns.hpp).
//
// The plan, as Postfix's smtp client makes it:
//   - relayhost "host" or "host:port": an MX lookup of host; "[host]" or "[host]:port":
//     none (brackets turn it off), host's own addresses. Without relayhost: the MX
//     lookup of the recipient's domain; a domain literal ("[192.0.2.1]",
//     "[IPv6:2001:db8::1]") is its address, without DNS.
//   - MX hosts in preference order, equal preferences shuffled by shuffle_seed (the
//     same seed, the same order: tests and a retry's log are reproducible); each
//     host's addresses alternate IPv6 and IPv4 (IPv6 first, as RFC 6724 prefers it;
//     alternating keeps one broken family from using up the tries, like Postfix's
//     smtp_balance_inet_protocols). An address already in an earlier hop is not tried
//     again. An MX host that is an address ("192.0.2.1" in the record) is used as one.
//   - no MX records (NODATA): the domain itself is the one MX host (RFC 5321 5.1).
//   - self: an MX host named myhostname, or with one of my_addresses, and every host of
//     its preference or less preferred are dropped; none left: 5.4.6 "mail for DOMAIN
//     loops back to myself". The rule holds where an MX lookup was made (an implicit
//     MX included), never for a bracketed relayhost or an address: "[127.0.0.1]:10025"
//     may well be this host's content filter.
// Failures, in Postfix's words ("Host or domain name not found. Name service error for
// name=example.com type=MX: Host not found"):
//   NXDOMAIN for the MX lookup, or no address for an implicit MX      perm 5.1.2
//   a null MX (RFC 7505: one MX record "." of preference 0)          perm 5.1.10
//   the self rule above                                              perm 5.4.6
//   a DNS temporary failure; MX hosts, none of which has an address  temp 4.4.3
// With a relayhost every failure is temporary, its code's class made 4 (a relayhost
// that does not resolve is the administrator's to fix; the recipient's address is not
// wrong): mail waits, as Postfix does for a relayhost that is not the final next hop.
//
// Bounded: at most max_hops MX hosts are looked up (after the self rule) and the plan
// holds at most max_addresses addresses in all.
// Must never: ask DNS for a bracketed relayhost's MX, or for a domain literal; put in
// a hop a name that is not a host name (dns.hpp checks what the wire gives).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "mail/status.hpp"
#include "net/dns.hpp"

namespace mailroom::net {

struct Relayhost {
    std::string host;       // name or address literal text (without brackets)
    uint16_t port = 25;
    bool mx_lookup = true;  // "[host]" or "[host]:port" = false (Postfix: brackets turn MX lookup off)
    std::string text;       // as written, for smtp_sasl_password_file and the log; parse() fills it

    // relayhost's forms: "host", "host:port", "[host]", "[host]:port", "[2001:db8::1]:587";
    // "" = none (nullopt). host is a host name (letters, digits, '-', '_', dots) or an
    // IPv4 address, or in brackets also an IPv6 address; port 1 to 65535 in decimal.
    // Refused: an unbracketed IPv6 address, "[]", "[", "host:", port 0 or over 65535,
    // white space or any other byte anywhere. Errors read "relayhost 'TEXT': what".
    static core::Result<std::optional<Relayhost>> parse(std::string_view text);

    // `text` when set, else the form parse() would read back: "[host]:port", "host".
    std::string written() const;
};

struct RemoteHop {
    std::string host;                    // the name as the MX record / relayhost gave it (for relay=host[addr]:port
                                         // and TLS SNI/verification); an address's text when the hop is an address
    std::vector<std::string> addresses;  // to try in order (inet_ntop text)
    uint16_t port = 25;
    uint16_t preference = 0;             // the MX record's; 0 for a relayhost, an address or an implicit MX
};

struct RoutePlan {
    std::vector<RemoteHop> hops;          // in the order to try
    std::optional<mail::Status> failure;  // when hops is empty: why (temporary: defer; permanent: bounce)
};

constexpr size_t max_route_hops = 10;
constexpr size_t max_route_addresses = 20;

// The plan for mail to `domain` (the recipient's domain). my_addresses: this host's
// own addresses (interface_addresses()), for the self rule; empty: by name only.
RoutePlan plan_route(Resolver& resolver, std::string_view domain, const std::optional<Relayhost>& relayhost,
                     std::string_view myhostname, uint64_t shuffle_seed,
                     const std::vector<std::string>& my_addresses = {});

// The addresses of this host's network interfaces (getifaddrs), loopback included, as
// inet_ntop writes them.
core::Result<std::vector<std::string>> interface_addresses();

}  // namespace mailroom::net
