#include "net/dns.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>

#include "net/listen_address.hpp"

namespace mailroom::net {

namespace {

// The largest DNS message (TCP's two-octet length): a reply never needs more room.
constexpr size_t max_reply = 65535;
// CNAME links followed inside one answer before it is called malformed.
constexpr int max_cname_links = 8;

using Outcome = DnsAnswer::Outcome;

const char* type_name(int type) {
    switch (type) {
    case ns_t_mx: return "MX";
    case ns_t_a: return "A";
    case ns_t_aaaa: return "AAAA";
    case ns_t_cname: return "CNAME";
    }
    return "?";
}

char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Names without regard to ASCII case, a trailing dot or not.
std::string_view without_dot(std::string_view name) {
    if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);
    return name;
}
bool same_name(std::string_view a, std::string_view b) {
    a = without_dot(a);
    b = without_dot(b);
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower_ascii(a[i]) != lower_ascii(b[i])) return false;
    return true;
}

// A name for a log line: printable ASCII as it is, other octets as \xHH (a name that
// failed is_host_name may hold anything the caller was given).
std::string shown(std::string_view name) {
    std::string out;
    for (char c : name) {
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte >= 0x7f || byte == '\\')
            out += fmt::format("\\x{:02x}", byte);
        else
            out += c;
    }
    return out;
}

std::string name_error(std::string_view name, int type, std::string_view what) {
    return fmt::format("Name service error for name={} type={}: {}", shown(name), type_name(type), what);
}

DnsAnswer answer(Outcome outcome, std::string why) {
    DnsAnswer a;
    a.outcome = outcome;
    a.why = std::move(why);
    return a;
}

// Postfix's words for the resolver's h_errno values (dns_strerror.c).
constexpr std::string_view not_found = "Host not found";
constexpr std::string_view try_again = "Host not found, try again";
constexpr std::string_view no_data = "Host found but no data record of requested type";
constexpr std::string_view malformed = "Malformed or unexpected name server reply";

DnsAnswer malformed_reply(const std::string& name, int type) {
    return answer(Outcome::temporary, name_error(name, type, malformed));
}

std::optional<std::string> address_text(int family, const unsigned char* bytes) {
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (::inet_ntop(family, bytes, text.data(), text.size()) == nullptr) return std::nullopt;
    return std::string(text.data());
}

bool is_unspecified(int family, const unsigned char* bytes) {
    size_t size = family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < size; ++i)
        if (bytes[i] != 0) return false;
    return true;
}

bool is_address(const std::string& text) {
    in6_addr v6{};
    in_addr v4{};
    return ::inet_pton(AF_INET, text.c_str(), &v4) == 1 || ::inet_pton(AF_INET6, text.c_str(), &v6) == 1;
}

// A domain name in the reply at `at` (inside rdata that ends at `end`), expanded;
// nullopt when it does not parse or does not end exactly at `end`.
std::optional<std::string> name_at(const ns_msg& msg, const unsigned char* at, const unsigned char* end) {
    std::array<char, NS_MAXDNAME> name{};
    int used = ::dn_expand(ns_msg_base(msg), ns_msg_end(msg), at, name.data(), static_cast<int>(name.size()));
    if (used < 0 || at + used != end) return std::nullopt;
    return std::string(name.data());
}

// An "ADDR" or "ADDR:PORT" of smtp_dns_servers.
core::Result<sockaddr_in> parse_server(const std::string& text) {
    std::string_view host = text;
    uint16_t port = 53;
    if (text.find(':') != text.rfind(':') || (!text.empty() && text.front() == '['))
        return core::unexpected_input(fmt::format(
            "DNS server '{}': an IPv6 server is not supported, give an IPv4 address (ADDR or ADDR:PORT)", shown(text)));
    if (auto colon = text.find(':'); colon != std::string::npos) {
        auto number = parse_port(std::string_view(text).substr(colon + 1));
        if (!number) return core::unexpected_input(fmt::format("DNS server '{}': bad port", shown(text)));
        port = *number;
        host = host.substr(0, colon);
    }
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    if (::inet_pton(AF_INET, std::string(host).c_str(), &sin.sin_addr) != 1)
        return core::unexpected_input(
            fmt::format("DNS server '{}': not an IPv4 address (ADDR or ADDR:PORT)", shown(text)));
    return sin;
}

}  // namespace

bool is_host_name(std::string_view text) {
    text = without_dot(text);
    if (text.empty() || text.size() > 253 || text == ".") return false;
    size_t label = 0;
    for (char c : text) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok || ++label > 63) return false;
    }
    return label > 0;
}

DnsAnswer parse_dns_reply(const unsigned char* reply, size_t size, const std::string& name, int type) {
    ns_msg msg{};
    if (size > max_reply || ::ns_initparse(reply, static_cast<int>(size), &msg) < 0) return malformed_reply(name, type);
    switch (reply[3] & 0x0f) {  // ns_initparse checked that the 12-octet header is there
    case ns_r_noerror: break;
    case ns_r_nxdomain: return answer(Outcome::no_domain, name_error(name, type, not_found));
    default: return answer(Outcome::temporary, name_error(name, type, try_again));
    }

    struct Link {
        std::string owner, target;
    };
    struct Record {
        std::string owner;
        MxRecord mx;
        std::string address;
    };
    std::vector<Link> cnames;
    std::vector<Record> records;
    bool dropped = false;  // a record of the type asked whose data is not usable
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
        ns_rr rr{};
        // ns_parserr expands the owner name: a compression loop or a pointer out of
        // the message fails here (glibc's ns_name_unpack counts what it has read).
        if (::ns_parserr(&msg, ns_s_an, i, &rr) < 0) return malformed_reply(name, type);
        if (ns_rr_class(rr) != ns_c_in) continue;
        const unsigned char* data = ns_rr_rdata(rr);
        const unsigned char* end = data + ns_rr_rdlen(rr);  // ns_parserr checked it is inside the reply
        int rr_type = ns_rr_type(rr);
        if (rr_type == ns_t_cname && type != ns_t_cname) {
            auto target = name_at(msg, data, end);
            if (!target) return malformed_reply(name, type);
            cnames.push_back({ns_rr_name(rr), std::move(*target)});
            continue;
        }
        if (rr_type != type) continue;
        Record record{ns_rr_name(rr), {}, {}};
        if (type == ns_t_mx) {
            if (ns_rr_rdlen(rr) < 3) return malformed_reply(name, type);
            auto host = name_at(msg, data + 2, end);
            if (!host) return malformed_reply(name, type);
            record.mx.preference = static_cast<uint16_t>(::ns_get16(data));
            // dn_expand writes the root name as "" (ns_name_ntop's "." cut off).
            record.mx.host = host->empty() || *host == "." ? "." : std::string(without_dot(*host));
            if (record.mx.host != "." && !is_host_name(record.mx.host) && !is_address(record.mx.host)) {
                dropped = true;
                continue;
            }
        } else {
            int family = type == ns_t_a ? AF_INET : AF_INET6;
            if (ns_rr_rdlen(rr) != (type == ns_t_a ? 4 : 16)) return malformed_reply(name, type);
            if (is_unspecified(family, data)) {
                dropped = true;
                continue;
            }
            auto text = address_text(family, data);
            if (!text) return malformed_reply(name, type);
            record.address = std::move(*text);
        }
        records.push_back(std::move(record));
    }

    // The chain as the answer gives it, from the name asked.
    std::string owner = name;
    for (int links = 0;; ++links) {
        auto next = std::find_if(cnames.begin(), cnames.end(), [&](const Link& l) { return same_name(l.owner, owner); });
        if (next == cnames.end()) break;
        if (links == max_cname_links) return malformed_reply(name, type);
        owner = next->target;
    }
    DnsAnswer result;
    for (auto& record : records) {
        if (!same_name(record.owner, owner)) continue;
        if (type == ns_t_mx)
            result.mx.push_back(std::move(record.mx));
        else
            result.addresses.push_back(std::move(record.address));
    }
    if (result.mx.empty() && result.addresses.empty())
        return dropped ? malformed_reply(name, type) : answer(Outcome::no_data, name_error(name, type, no_data));
    result.outcome = Outcome::found;
    return result;
}

void SystemResolver::StateCloser::operator()(struct __res_state* state) const {
    ::res_nclose(state);  // closes its sockets, frees what res_ninit allocated
    delete state;
}

core::Result<SystemResolver> SystemResolver::make(const std::vector<std::string>& servers, ResolverTiming timing) {
    if (servers.size() > MAXNS)
        return core::unexpected_input(fmt::format("{} DNS servers given: glibc's resolver takes at most {}", servers.size(), MAXNS));
    std::vector<sockaddr_in> addresses;
    for (const auto& text : servers) {
        auto address = parse_server(text);
        if (!address) return core::unexpected(address.error());
        addresses.push_back(*address);
    }
    // glibc's own bounds for resolv.conf's "timeout:" and "attempts:".
    if (timing.timeout_seconds < 0 || timing.timeout_seconds > RES_MAXRETRANS || timing.attempts < 0 ||
        timing.attempts > RES_MAXRETRY)
        return core::unexpected_input(fmt::format("resolver timeout must be 0 to {} seconds and attempts 0 to {}",
                                                  RES_MAXRETRANS, RES_MAXRETRY));

    // On the heap: glibc's res_state holds pointers to memory it owns (the IPv6
    // servers' addresses) and must stay where res_ninit filled it.
    auto fresh = std::make_unique<struct __res_state>();
    errno = 0;
    if (::res_ninit(fresh.get()) != 0)
        return core::unexpected_errno("initialize the DNS resolver (res_ninit)", errno ? errno : ENOMEM);
    std::unique_ptr<struct __res_state, StateCloser> state(fresh.release());

    // Names are looked up as they are: no default domain, no search list.
    state->options &= ~static_cast<unsigned long>(RES_DEFNAMES | RES_DNSRCH | RES_STAYOPEN);
    if (timing.timeout_seconds > 0) state->retrans = timing.timeout_seconds;
    if (timing.attempts > 0) state->retry = timing.attempts;
    if (!addresses.empty()) {
        // The servers given replace those of /etc/resolv.conf. An IPv6 server read
        // from there sits in _u._ext.nsaddrs (malloc'd by glibc, which prefers it over
        // nsaddr_list): it is freed and cleared, as glibc's own state for an IPv4
        // server has it. RES_NORELOAD: glibc must not reload resolv.conf over them
        // (it already keeps a state whose servers an application changed).
        for (auto*& extended : state->_u._ext.nsaddrs) {
            std::free(extended);
            extended = nullptr;
        }
        for (size_t i = 0; i < addresses.size(); ++i) state->nsaddr_list[i] = addresses[i];
        state->nscount = static_cast<int>(addresses.size());
        state->options |= RES_NORELOAD;
    }
    return SystemResolver(std::move(state));
}

namespace {

DnsAnswer query(struct __res_state* state, const std::string& name, int type) {
    if (!is_host_name(name)) return answer(Outcome::no_domain, name_error(name, type, "Malformed domain name"));
    std::vector<unsigned char> reply(max_reply);
    state->res_h_errno = 0;
    int size = ::res_nquery(state, name.c_str(), ns_c_in, type, reply.data(), static_cast<int>(reply.size()));
    if (size < 0) {
        switch (state->res_h_errno) {
        case HOST_NOT_FOUND: return answer(Outcome::no_domain, name_error(name, type, not_found));
        case NO_DATA: return answer(Outcome::no_data, name_error(name, type, no_data));
        case NO_RECOVERY: return answer(Outcome::temporary, name_error(name, type, "Non-recoverable error"));
        default: return answer(Outcome::temporary, name_error(name, type, try_again));
        }
    }
    // res_nquery returns the whole length even when it copied less.
    if (static_cast<size_t>(size) > reply.size()) return malformed_reply(name, type);
    return parse_dns_reply(reply.data(), static_cast<size_t>(size), name, type);
}

}  // namespace

DnsAnswer SystemResolver::mx(const std::string& domain) { return query(state_.get(), domain, ns_t_mx); }

DnsAnswer SystemResolver::addresses(const std::string& host) {
    if (is_address(host)) {
        DnsAnswer literal;
        literal.outcome = Outcome::found;
        literal.addresses.push_back(host);
        return literal;
    }
    DnsAnswer six = query(state_.get(), host, ns_t_aaaa);
    DnsAnswer four = query(state_.get(), host, ns_t_a);
    if (six.outcome == Outcome::found || four.outcome == Outcome::found) {
        DnsAnswer both;
        both.outcome = Outcome::found;
        both.addresses = std::move(six.addresses);
        both.addresses.insert(both.addresses.end(), four.addresses.begin(), four.addresses.end());
        return both;
    }
    if (six.outcome == Outcome::temporary) return six;
    if (four.outcome == Outcome::temporary) return four;
    if (six.outcome == Outcome::no_domain && four.outcome == Outcome::no_domain) return four;
    return four.outcome == Outcome::no_data ? four : six;
}

}  // namespace mailroom::net
