// DNS for remote delivery (SPEC 7 "Remote delivery"): a domain's MX records and a
// host's addresses, through an interface that plan_route (remote_route.hpp) asks and
// tests fake. SystemResolver is glibc's own stub resolver (libresolv's res_nquery on
// a private res_state): blocking, no threads, its socket closed after each query;
// timeouts and retries are res_state's.
//
// Outcomes follow the answer code, as Postfix reads them:
//   found      NOERROR with records of the type asked (through a CNAME chain the
//              answer itself gives, owner names compared without regard to case)
//   no_data    NOERROR without them (NODATA)
//   no_domain  NXDOMAIN
//   temporary  everything else: SERVFAIL, REFUSED, FORMERR, a timeout, no server
//              reachable, a TC answer that TCP could not complete, an answer that
//              does not parse (cut short, a compression loop, a pointer out of the
//              message, an A record of 5 octets...): mail waits, it is never bounced
//              for a resolver's trouble.
// `why` words it as Postfix does: "Name service error for name=example.com type=MX:
// Host not found, try again".
//
// Invariants: names are looked up as given, fully qualified (no search list, no
// default domain: RES_DEFNAMES and RES_DNSRCH are off); a name that is not one (empty,
// a label over 63 octets, over 253 octets, a byte outside letters, digits, '-', '_'
// and '.') is no_domain without a query. Every name handed back is a host name of
// those bytes (or an address's text, or "." for a null MX): nothing from the wire
// reaches a log line or a TLS SNI unchecked; an MX record naming anything else is
// dropped (all of them dropped: temporary, a malformed reply). Addresses are
// inet_ntop's text; the unspecified addresses (0.0.0.0, ::) are dropped (a connection
// to one reaches this host). A CNAME chain longer than 8 links is a malformed reply.
// Must never: use the process-wide _res (a SystemResolver owns its res_state), start a
// thread, or ask a server other than those given (or, when none are given, those of
// /etc/resolv.conf).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

struct __res_state;  // <resolv.h>, kept out of this header (its macros rename res_* functions)

namespace mailroom::net {

struct MxRecord {
    uint16_t preference = 0;
    std::string host;  // without the trailing dot; "." is the root (a null MX, RFC 7505)
};

struct DnsAnswer {
    enum class Outcome { found, no_data, no_domain, temporary };
    Outcome outcome = Outcome::temporary;
    std::vector<MxRecord> mx;            // for mx(): in the order received
    std::vector<std::string> addresses;  // for addresses(): the AAAA records' then the A records', each in the order received
    std::string why;                     // empty when found
};

class Resolver {
public:
    virtual ~Resolver() = default;
    virtual DnsAnswer mx(const std::string& domain) = 0;
    // AAAA and A (two queries). found when either has records (one failing
    // temporarily is then forgotten: Postfix does the same); else temporary when
    // either failed so; else no_domain when both said NXDOMAIN; else no_data.
    virtual DnsAnswer addresses(const std::string& host) = 0;
};

// How long a query may take: each server is asked `attempts` times, waiting
// `timeout_seconds` (glibc doubles it on each round, divided among the servers) for
// an answer. 0 keeps what res_ninit found: /etc/resolv.conf's "options timeout:N
// attempts:N", else glibc's defaults, 5 s and 2 attempts (at most about 15 s per
// query with one server; addresses() asks two queries). glibc's bounds hold: at most
// 30 s and 5 attempts.
struct ResolverTiming {
    int timeout_seconds = 0;
    int attempts = 0;
};

class SystemResolver final : public Resolver {
public:
    // `servers`: smtp_dns_servers' items, "ADDR" or "ADDR:PORT" (port 53 when none),
    // IPv4 only (enough for a test resolver or a local cache; an IPv6 server is
    // refused with that said), at most 3 (glibc's MAXNS). Empty: the servers of
    // /etc/resolv.conf. The options and search list of /etc/resolv.conf are read in
    // both cases, then the search list is switched off (see above).
    static core::Result<SystemResolver> make(const std::vector<std::string>& servers, ResolverTiming timing = {});

    DnsAnswer mx(const std::string& domain) override;
    DnsAnswer addresses(const std::string& host) override;

    SystemResolver(SystemResolver&&) noexcept = default;
    SystemResolver& operator=(SystemResolver&&) noexcept = default;

private:
    struct StateCloser {
        void operator()(struct __res_state* state) const;
    };
    explicit SystemResolver(std::unique_ptr<struct __res_state, StateCloser> state) : state_(std::move(state)) {}
    std::unique_ptr<struct __res_state, StateCloser> state_;
};

// One reply of the type asked (ns_t_mx, ns_t_a or ns_t_aaaa) read into a DnsAnswer,
// for `name` asked. Exposed for tests: SystemResolver calls it on what res_nquery
// returned (NOERROR with at least one answer record).
DnsAnswer parse_dns_reply(const unsigned char* reply, size_t size, const std::string& name, int type);

// Whether text is a host name as this file takes it (see the invariants above).
bool is_host_name(std::string_view text);

}  // namespace mailroom::net
