#include "net/remote_route.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <utility>

#include "net/listen_address.hpp"
#include "smtp/client_networks.hpp"

namespace mailroom::net {

namespace {

using Outcome = DnsAnswer::Outcome;
using mail::Status;

char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view without_dot(std::string_view name) {
    if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);
    return name;
}

bool same_name(std::string_view a, std::string_view b) {
    a = without_dot(a);
    b = without_dot(b);
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower_ascii(x) == lower_ascii(y); });
}

// Text quoted in an error: printable ASCII as it is, anything else as \xHH.
std::string shown(std::string_view text) {
    std::string out;
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        if (byte <= 0x20 || byte >= 0x7f || byte == '\\' || byte == '\'')
            out += fmt::format("\\x{:02x}", byte);
        else
            out += c;
    }
    return out;
}

// An address's text as inet_ntop writes it (an IPv4-mapped one as IPv4), or nothing.
std::optional<std::string> address_of(std::string_view text) {
    auto ip = smtp::IpAddress::parse(text);
    if (!ip) return std::nullopt;
    return ip->text();
}

bool is_v6(const std::string& address) { return address.find(':') != std::string::npos; }

// splitmix64: a tiny generator whose sequence is the same on every platform and
// standard library (std::shuffle's is not specified).
uint64_t next_random(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Sorted by preference, each run of equal preferences shuffled (Fisher-Yates).
void order_exchangers(std::vector<MxRecord>& records, uint64_t seed) {
    std::stable_sort(records.begin(), records.end(),
                     [](const MxRecord& a, const MxRecord& b) { return a.preference < b.preference; });
    uint64_t state = seed;
    for (size_t start = 0; start < records.size();) {
        size_t end = start + 1;
        while (end < records.size() && records[end].preference == records[start].preference) ++end;
        for (size_t i = end - start - 1; i > 0; --i) {
            size_t j = static_cast<size_t>(next_random(state) % (i + 1));
            std::swap(records[start + i], records[start + j]);
        }
        start = end;
    }
}

// IPv6 and IPv4 in turn, IPv6 first, each family in the order given.
std::vector<std::string> alternate_families(const std::vector<std::string>& addresses) {
    std::vector<std::string> six, four, out;
    for (const auto& a : addresses) (is_v6(a) ? six : four).push_back(a);
    for (size_t i = 0; i < std::max(six.size(), four.size()); ++i) {
        if (i < six.size()) out.push_back(six[i]);
        if (i < four.size()) out.push_back(four[i]);
    }
    return out;
}

std::string not_found(const std::string& why) { return "Host or domain name not found. " + why; }

// "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3); nothing when domain is not
// bracketed; "" when it is but holds no address.
std::optional<std::string> domain_literal(std::string_view domain) {
    if (domain.size() < 2 || domain.front() != '[' || domain.back() != ']') return std::nullopt;
    std::string_view inside = domain.substr(1, domain.size() - 2);
    bool v6_tag = inside.size() > 5 && same_name(inside.substr(0, 5), "IPv6:");
    if (v6_tag) inside.remove_prefix(5);
    auto address = address_of(inside);
    if (!address || is_v6(*address) != v6_tag) return std::string();
    return address;
}

}  // namespace

core::Result<std::optional<Relayhost>> Relayhost::parse(std::string_view text) {
    if (text.empty()) return std::optional<Relayhost>();
    auto bad = [&](std::string_view what) {
        return core::unexpected_input(fmt::format("relayhost '{}': {}", shown(text), what));
    };
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        if (byte <= 0x20 || byte >= 0x7f) return bad("white space or a byte that is not printable ASCII");
    }
    Relayhost relay;
    relay.text = std::string(text);
    std::string_view host, port;
    bool has_port = false;
    if (text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos) return bad("'[' without ']'");
        host = text.substr(1, close - 1);
        if (host.empty()) return bad("nothing between '[' and ']'");
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return bad("want [HOST] or [HOST]:PORT");
            port = rest.substr(1);
            has_port = true;
        }
        relay.mx_lookup = false;
    } else {
        size_t colon = text.find(':');
        if (colon != text.rfind(':')) return bad("an IPv6 address goes in brackets: [ADDRESS]:PORT");
        host = text.substr(0, colon);
        if (colon != std::string_view::npos) {
            port = text.substr(colon + 1);
            has_port = true;
        }
        if (host.empty()) return bad("no host before ':'");
    }
    if (has_port) {
        auto number = parse_port(port);
        if (!number) return bad("the port must be a number from 1 to 65535");
        relay.port = *number;
    }
    if (auto address = address_of(host)) {
        if (relay.mx_lookup && is_v6(*address)) return bad("an IPv6 address goes in brackets: [ADDRESS]:PORT");
        relay.host = std::string(host);
    } else if (host.find(']') != std::string_view::npos || host.find('[') != std::string_view::npos) {
        return bad("want [HOST] or [HOST]:PORT");
    } else if (is_host_name(host)) {
        relay.host = std::string(without_dot(host));
    } else {
        return bad("not a host name or an address");
    }
    return std::optional<Relayhost>(std::move(relay));
}

std::string Relayhost::written() const {
    if (!text.empty()) return text;
    std::string out = mx_lookup ? host : "[" + host + "]";
    if (port != 25) out += ":" + std::to_string(port);
    return out;
}

RoutePlan plan_route(Resolver& resolver, std::string_view domain, const std::optional<Relayhost>& relayhost,
                     std::string_view myhostname, uint64_t shuffle_seed, const std::vector<std::string>& my_addresses) {
    const bool via_relayhost = relayhost.has_value();
    const std::string name = via_relayhost ? relayhost->host : std::string(without_dot(domain));
    const uint16_t port = via_relayhost ? relayhost->port : 25;
    auto fail = [&](Status status) {
        RoutePlan plan;
        if (via_relayhost && status.is_permanent()) status = Status::temp("4" + status.code().substr(1), status.text());
        plan.failure = std::move(status);
        return plan;
    };
    auto one_address = [&](const std::string& address) {
        RoutePlan plan;
        plan.hops.push_back(RemoteHop{address, {address}, port, 0});
        return plan;
    };

    // Addresses need no DNS.
    if (!via_relayhost) {
        if (auto literal = domain_literal(domain)) {
            if (literal->empty())
                return fail(Status::perm("5.1.2", fmt::format("bad address literal {}", shown(domain))));
            return one_address(*literal);
        }
    }
    if (auto address = address_of(name)) return one_address(*address);

    // The exchangers, in the order to try.
    std::vector<MxRecord> exchangers;
    const bool self_rule = !via_relayhost || relayhost->mx_lookup;
    bool implicit = true;
    if (self_rule) {
        DnsAnswer mx = resolver.mx(name);
        switch (mx.outcome) {
        case Outcome::no_domain: return fail(Status::perm("5.1.2", not_found(mx.why)));
        case Outcome::temporary: return fail(Status::temp("4.4.3", not_found(mx.why)));
        case Outcome::no_data: break;
        case Outcome::found:
            if (mx.mx.size() == 1 && mx.mx[0].host == "." && mx.mx[0].preference == 0)
                return fail(Status::perm("5.1.10", fmt::format("Domain {} does not accept mail (nullMX)", name)));
            implicit = false;
            exchangers = std::move(mx.mx);
            break;
        }
    }
    if (implicit) exchangers = {MxRecord{0, name}};
    order_exchangers(exchangers, shuffle_seed);
    // One host named twice is looked up once, at its best preference.
    for (size_t i = 0; i < exchangers.size(); ++i) {
        auto same = [&](const MxRecord& r) { return same_name(r.host, exchangers[i].host); };
        exchangers.erase(std::remove_if(exchangers.begin() + static_cast<long>(i) + 1, exchangers.end(), same),
                         exchangers.end());
    }

    const std::string loop_text = fmt::format("mail for {} loops back to myself", name);
    // Postfix's rule: this host and every host it prefers no better are dropped.
    auto drop_from = [](std::vector<MxRecord>& records, uint16_t preference) {
        records.erase(std::remove_if(records.begin(), records.end(),
                                     [&](const MxRecord& r) { return r.preference >= preference; }),
                      records.end());
    };
    if (self_rule && !myhostname.empty()) {
        auto me = std::find_if(exchangers.begin(), exchangers.end(),
                               [&](const MxRecord& r) { return same_name(r.host, myhostname); });
        if (me != exchangers.end()) {
            drop_from(exchangers, me->preference);
            if (exchangers.empty()) return fail(Status::perm("5.4.6", loop_text));
        }
    }
    if (exchangers.size() > max_route_hops) exchangers.resize(max_route_hops);

    std::vector<std::string> mine;
    for (const auto& a : my_addresses)
        if (auto address = address_of(a)) mine.push_back(*address);

    RoutePlan plan;
    std::vector<std::string> seen;
    std::string last_why;
    Outcome last_outcome = Outcome::no_domain;
    for (const auto& exchanger : exchangers) {
        if (seen.size() >= max_route_addresses) break;
        std::vector<std::string> found;
        if (exchanger.host == ".") {
            last_why = fmt::format("a null MX record for {} among other MX records", name);
            last_outcome = Outcome::no_data;
            continue;
        }
        if (auto address = address_of(exchanger.host)) {
            found.push_back(*address);
        } else {
            DnsAnswer a = resolver.addresses(exchanger.host);
            if (a.outcome != Outcome::found) {
                last_why = a.why;
                last_outcome = a.outcome;
                continue;
            }
            for (const auto& text : a.addresses)
                if (auto address = address_of(text)) found.push_back(*address);
            if (found.empty()) {
                last_why = fmt::format("no usable address for {}", exchanger.host);
                last_outcome = Outcome::temporary;
                continue;
            }
        }
        if (self_rule &&
            std::any_of(found.begin(), found.end(), [&](const std::string& a) {
                return std::find(mine.begin(), mine.end(), a) != mine.end();
            })) {
            plan.hops.erase(std::remove_if(plan.hops.begin(), plan.hops.end(),
                                           [&](const RemoteHop& h) { return h.preference >= exchanger.preference; }),
                            plan.hops.end());
            if (plan.hops.empty()) return fail(Status::perm("5.4.6", loop_text));
            break;
        }
        RemoteHop hop{exchanger.host, {}, port, implicit ? uint16_t{0} : exchanger.preference};
        for (auto& address : alternate_families(found)) {
            if (seen.size() >= max_route_addresses) break;
            if (std::find(seen.begin(), seen.end(), address) != seen.end()) continue;
            seen.push_back(address);
            hop.addresses.push_back(std::move(address));
        }
        if (!hop.addresses.empty()) plan.hops.push_back(std::move(hop));
    }
    if (!plan.hops.empty()) return plan;
    if (implicit && last_outcome != Outcome::temporary) return fail(Status::perm("5.1.2", not_found(last_why)));
    return fail(Status::temp("4.4.3", not_found(last_why)));
}

core::Result<std::vector<std::string>> interface_addresses() {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return core::unexpected_errno("getifaddrs");
    std::vector<std::string> out;
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr) continue;
        std::array<char, INET6_ADDRSTRLEN> text{};
        const void* bytes = nullptr;
        if (i->ifa_addr->sa_family == AF_INET) bytes = &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr;
        if (i->ifa_addr->sa_family == AF_INET6) bytes = &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr;
        if (bytes && ::inet_ntop(i->ifa_addr->sa_family, bytes, text.data(), text.size()))
            out.emplace_back(text.data());
    }
    ::freeifaddrs(list);
    return out;
}

}  // namespace mailroom::net
