// lib/net/remote_route.hpp: relayhost's forms and the ones refused, and plan_route
// with a fake Resolver (a map): MX order and shuffling, the implicit MX, NXDOMAIN,
// temporary failures, null MX, the self rule, hosts without addresses, relayhost with
// and without brackets, address literals, and the caps.
#include "net/remote_route.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

using mailroom::mail::Status;
using mailroom::net::DnsAnswer;
using mailroom::net::MxRecord;
using mailroom::net::plan_route;
using mailroom::net::Relayhost;
using mailroom::net::RemoteHop;
using mailroom::net::Resolver;
using mailroom::net::RoutePlan;
using Outcome = mailroom::net::DnsAnswer::Outcome;

namespace {

std::string lower(std::string text) {
    for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

// Answers from maps, names without regard to case as in DNS; a name in neither map is
// NXDOMAIN. Keeps the questions asked.
class FakeResolver final : public Resolver {
public:
    std::map<std::string, DnsAnswer> mx_answers, address_answers;
    std::vector<std::string> asked;  // "MX name", "ADDR name"

    DnsAnswer mx(const std::string& domain) override {
        asked.push_back("MX " + domain);
        return lookup(mx_answers, domain, "MX");
    }
    DnsAnswer addresses(const std::string& host) override {
        asked.push_back("ADDR " + host);
        return lookup(address_answers, host, "A");
    }

    void set_mx(const std::string& domain, std::vector<MxRecord> records) {
        DnsAnswer a;
        a.outcome = Outcome::found;
        a.mx = std::move(records);
        mx_answers[lower(domain)] = a;
    }
    void set_addresses(const std::string& host, std::vector<std::string> addresses) {
        DnsAnswer a;
        a.outcome = Outcome::found;
        a.addresses = std::move(addresses);
        address_answers[lower(host)] = a;
    }
    void set_mx_failure(const std::string& domain, Outcome outcome) {
        mx_answers[lower(domain)] = failure(domain, "MX", outcome);
    }
    void set_address_failure(const std::string& host, Outcome outcome) {
        address_answers[lower(host)] = failure(host, "A", outcome);
    }

private:
    static DnsAnswer failure(const std::string& name, const char* type, Outcome outcome) {
        DnsAnswer a;
        a.outcome = outcome;
        const char* what = outcome == Outcome::no_domain ? "Host not found"
                         : outcome == Outcome::no_data   ? "Host found but no data record of requested type"
                                                         : "Host not found, try again";
        a.why = std::string("Name service error for name=") + name + " type=" + type + ": " + what;
        return a;
    }
    static DnsAnswer lookup(const std::map<std::string, DnsAnswer>& answers, const std::string& name, const char* type) {
        auto found = answers.find(lower(name));
        return found != answers.end() ? found->second : failure(name, type, Outcome::no_domain);
    }
};

std::vector<std::string> hosts_of(const RoutePlan& plan) {
    std::vector<std::string> hosts;
    for (const auto& hop : plan.hops) hosts.push_back(hop.host);
    return hosts;
}

Relayhost relay(const char* text) {
    auto parsed = Relayhost::parse(text);
    REQUIRE(parsed);
    REQUIRE(parsed->has_value());
    return **parsed;
}

void check_failure(const RoutePlan& plan, Status::Class cls, const std::string& code, const std::string& text) {
    CHECK(plan.hops.empty());
    REQUIRE(plan.failure);
    CHECK(plan.failure->cls() == cls);
    CHECK(plan.failure->code() == code);
    CHECK(plan.failure->text() == text);
}

// example.com: MX 10 mx1, 20 mx2, 30 mx3, each with one IPv4 address.
FakeResolver example_dns() {
    FakeResolver dns;
    dns.set_mx("example.com", {{20, "mx2.example.com"}, {10, "mx1.example.com"}, {30, "mx3.example.com"}});
    dns.set_addresses("mx1.example.com", {"192.0.2.1"});
    dns.set_addresses("mx2.example.com", {"192.0.2.2"});
    dns.set_addresses("mx3.example.com", {"192.0.2.3"});
    return dns;
}

}  // namespace

TEST_CASE("relayhost takes host, host:port, [host], [host]:port and a bracketed IPv6 address") {
    struct Case {
        const char* text;
        const char* host;
        uint16_t port;
        bool mx_lookup;
    };
    for (auto c : {Case{"smtp.example.com", "smtp.example.com", 25, true},
                   Case{"smtp.example.com:587", "smtp.example.com", 587, true},
                   Case{"[smtp.example.com]", "smtp.example.com", 25, false},
                   Case{"[smtp.example.com]:587", "smtp.example.com", 587, false},
                   Case{"[2001:db8::1]:587", "2001:db8::1", 587, false},
                   Case{"[2001:db8::1]", "2001:db8::1", 25, false},
                   Case{"[192.0.2.1]:2525", "192.0.2.1", 2525, false},
                   Case{"192.0.2.1", "192.0.2.1", 25, true},
                   Case{"relay_1.example.com.:65535", "relay_1.example.com", 65535, true},
                   Case{"localhost:1", "localhost", 1, true}}) {
        INFO(c.text);
        auto parsed = Relayhost::parse(c.text);
        REQUIRE(parsed);
        REQUIRE(parsed->has_value());
        CHECK((*parsed)->host == c.host);
        CHECK((*parsed)->port == c.port);
        CHECK((*parsed)->mx_lookup == c.mx_lookup);
        CHECK((*parsed)->text == c.text);
        CHECK((*parsed)->written() == c.text);
    }
    auto none = Relayhost::parse("");
    REQUIRE(none);
    CHECK(!none->has_value());
}

TEST_CASE("relayhost refuses port 0 and 65536, brackets unclosed or empty, a missing port, and white space") {
    for (const char* bad : {"host:0", "host:65536", "host:99999999999", "[", "[]", "[]:25", "host:", "[host]:", ":25",
                            " host", "host ", "ho st", "\thost", "host\n", "[host", "[host]587", "[host]:25:1",
                            "[a]b]", "[[a]]", "2001:db8::1", "2001:db8::1:25", "host:-1", "host:+25", "host:smtp",
                            "host:0x19", "ho!st", "a..b", "host/25", "h\xc3\xa9te.example"}) {
        INFO(bad);
        auto parsed = Relayhost::parse(bad);
        REQUIRE(!parsed);
        CHECK(parsed.error().message().rfind("relayhost '", 0) == 0);
        CHECK(parsed.error().message().find('\n') == std::string::npos);
    }
    CHECK(Relayhost::parse("host:0").error().message() == "relayhost 'host:0': the port must be a number from 1 to 65535");
    CHECK(Relayhost::parse("[").error().message() == "relayhost '[': '[' without ']'");
    CHECK(Relayhost::parse("[]").error().message() == "relayhost '[]': nothing between '[' and ']'");
    CHECK(Relayhost::parse("ho st").error().message() ==
          "relayhost 'ho\\x20st': white space or a byte that is not printable ASCII");
}

TEST_CASE("a relayhost built by hand is written as parse would read it") {
    CHECK((Relayhost{"smtp.example.com", 587, false}).written() == "[smtp.example.com]:587");
    CHECK((Relayhost{"smtp.example.com", 25, false}).written() == "[smtp.example.com]");
    CHECK((Relayhost{"smtp.example.com", 25, true}).written() == "smtp.example.com");
    CHECK((Relayhost{"smtp.example.com", 2525, true}).written() == "smtp.example.com:2525");
}

TEST_CASE("MX hosts are tried in preference order, each with its addresses, on port 25") {
    auto dns = example_dns();
    auto plan = plan_route(dns, "example.com", std::nullopt, "me.example.org", 1);
    CHECK(!plan.failure);
    REQUIRE(plan.hops.size() == 3);
    CHECK(hosts_of(plan) == std::vector<std::string>{"mx1.example.com", "mx2.example.com", "mx3.example.com"});
    CHECK(plan.hops[0].preference == 10);
    CHECK(plan.hops[2].preference == 30);
    CHECK(plan.hops[1].addresses == std::vector<std::string>{"192.0.2.2"});
    for (const auto& hop : plan.hops) CHECK(hop.port == 25);
    CHECK(dns.asked == std::vector<std::string>{"MX example.com", "ADDR mx1.example.com", "ADDR mx2.example.com",
                                                "ADDR mx3.example.com"});
}

TEST_CASE("equal preferences are shuffled by the seed: the same seed the same order, both orders across seeds") {
    FakeResolver dns;
    dns.set_mx("example.com", {{20, "c.example.com"}, {10, "a.example.com"}, {10, "b.example.com"}});
    for (const char* host : {"a.example.com", "b.example.com", "c.example.com"}) dns.set_addresses(host, {"192.0.2.1"});
    dns.set_addresses("b.example.com", {"192.0.2.2"});
    dns.set_addresses("c.example.com", {"192.0.2.3"});
    std::set<std::vector<std::string>> orders;
    for (uint64_t seed = 0; seed < 32; ++seed) {
        auto plan = plan_route(dns, "example.com", std::nullopt, "me.example.org", seed);
        auto again = plan_route(dns, "example.com", std::nullopt, "me.example.org", seed);
        CHECK(hosts_of(plan) == hosts_of(again));
        REQUIRE(plan.hops.size() == 3);
        CHECK(plan.hops[2].host == "c.example.com");  // never ahead of a better preference
        orders.insert(hosts_of(plan));
    }
    CHECK(orders == std::set<std::vector<std::string>>{{"a.example.com", "b.example.com", "c.example.com"},
                                                         {"b.example.com", "a.example.com", "c.example.com"}});
}

TEST_CASE("without MX records the domain itself is the MX host (RFC 5321 5.1)") {
    FakeResolver dns;
    dns.set_mx_failure("plain.example", Outcome::no_data);
    dns.set_addresses("plain.example", {"192.0.2.9"});
    auto plan = plan_route(dns, "plain.example", std::nullopt, "me.example.org", 0);
    REQUIRE(plan.hops.size() == 1);
    CHECK(plan.hops[0].host == "plain.example");
    CHECK(plan.hops[0].addresses == std::vector<std::string>{"192.0.2.9"});
    CHECK(plan.hops[0].preference == 0);
    CHECK(plan.hops[0].port == 25);
}

TEST_CASE("a domain that does not exist bounces 5.1.2") {
    FakeResolver dns;
    auto plan = plan_route(dns, "nowhere.example", std::nullopt, "me.example.org", 0);
    check_failure(plan, Status::Class::permanent, "5.1.2",
                  "Host or domain name not found. Name service error for name=nowhere.example type=MX: Host not found");
}

TEST_CASE("a DNS temporary failure defers 4.4.3") {
    FakeResolver dns;
    dns.set_mx_failure("slow.example", Outcome::temporary);
    auto plan = plan_route(dns, "slow.example", std::nullopt, "me.example.org", 0);
    check_failure(plan, Status::Class::temporary, "4.4.3",
                  "Host or domain name not found. Name service error for name=slow.example type=MX: Host not found, "
                  "try again");
}

TEST_CASE("an implicit MX without an address bounces 5.1.2, or defers when the lookup failed for now") {
    FakeResolver dns;
    dns.set_mx_failure("bare.example", Outcome::no_data);
    dns.set_address_failure("bare.example", Outcome::no_data);
    auto plan = plan_route(dns, "bare.example", std::nullopt, "me.example.org", 0);
    check_failure(plan, Status::Class::permanent, "5.1.2",
                  "Host or domain name not found. Name service error for name=bare.example type=A: Host found but no "
                  "data record of requested type");
    dns.set_address_failure("bare.example", Outcome::temporary);
    auto later = plan_route(dns, "bare.example", std::nullopt, "me.example.org", 0);
    REQUIRE(later.failure);
    CHECK(later.failure->code() == "4.4.3");
}

TEST_CASE("a null MX bounces 5.1.10 without an address lookup") {
    FakeResolver dns;
    dns.set_mx("null.example", {{0, "."}});
    auto plan = plan_route(dns, "null.example", std::nullopt, "me.example.org", 0);
    check_failure(plan, Status::Class::permanent, "5.1.10", "Domain null.example does not accept mail (nullMX)");
    CHECK(dns.asked == std::vector<std::string>{"MX null.example"});
}

TEST_CASE("a root MX that is not a lone null MX is skipped like a host without an address") {
    FakeResolver dns;
    dns.set_mx("odd.example", {{10, "."}});
    auto alone = plan_route(dns, "odd.example", std::nullopt, "me.example.org", 0);
    REQUIRE(alone.failure);
    CHECK(alone.failure->code() == "4.4.3");
    dns.set_mx("odd.example", {{0, "."}, {10, "mx.odd.example"}});
    dns.set_addresses("mx.odd.example", {"192.0.2.4"});
    auto mixed = plan_route(dns, "odd.example", std::nullopt, "me.example.org", 0);
    CHECK(hosts_of(mixed) == std::vector<std::string>{"mx.odd.example"});
}

TEST_CASE("an MX host naming myhostname is dropped with every less preferred one") {
    auto dns = example_dns();
    dns.set_mx("example.com", {{10, "mx1.example.com"}, {20, "ME.example.org."}, {30, "mx3.example.com"},
                               {20, "mx2.example.com"}});
    auto plan = plan_route(dns, "example.com", std::nullopt, "me.example.org", 0);
    CHECK(!plan.failure);
    CHECK(hosts_of(plan) == std::vector<std::string>{"mx1.example.com"});
}

TEST_CASE("mail for a domain whose best MX host is this host loops back to myself 5.4.6") {
    auto dns = example_dns();
    dns.set_mx("example.com", {{10, "mx1.example.com"}, {10, "me.example.org"}, {20, "mx2.example.com"}});
    auto plan = plan_route(dns, "example.com", std::nullopt, "me.example.org", 0);
    check_failure(plan, Status::Class::permanent, "5.4.6", "mail for example.com loops back to myself");
    // An implicit MX that is this host.
    dns.set_mx_failure("me.example.org", Outcome::no_data);
    auto implicit = plan_route(dns, "me.example.org", std::nullopt, "me.example.org", 0);
    REQUIRE(implicit.failure);
    CHECK(implicit.failure->code() == "5.4.6");
}

TEST_CASE("an MX host with one of this host's addresses is dropped with every less preferred one") {
    auto dns = example_dns();
    dns.set_addresses("mx2.example.com", {"2001:db8::2", "192.0.2.2"});
    std::vector<std::string> mine{"127.0.0.1", "192.0.2.2"};
    auto plan = plan_route(dns, "example.com", std::nullopt, "me.example.org", 0, mine);
    CHECK(hosts_of(plan) == std::vector<std::string>{"mx1.example.com"});
    // The best one: a loop, also when an equal one came first.
    dns.set_mx("example.com", {{10, "mx1.example.com"}, {10, "mx2.example.com"}, {20, "mx3.example.com"}});
    for (uint64_t seed = 0; seed < 8; ++seed) {
        auto loop = plan_route(dns, "example.com", std::nullopt, "me.example.org", seed, mine);
        REQUIRE(loop.failure);
        CHECK(loop.failure->code() == "5.4.6");
    }
    // An IPv4-mapped spelling of one of mine is mine.
    auto mapped = plan_route(dns, "example.com", std::nullopt, "", 0, {"::ffff:192.0.2.2"});
    CHECK(mapped.failure);
}

TEST_CASE("an MX host without an address is skipped, and none left defers 4.4.3") {
    auto dns = example_dns();
    dns.set_address_failure("mx1.example.com", Outcome::no_domain);
    dns.set_address_failure("mx2.example.com", Outcome::temporary);
    auto plan = plan_route(dns, "example.com", std::nullopt, "me.example.org", 0);
    CHECK(hosts_of(plan) == std::vector<std::string>{"mx3.example.com"});
    dns.set_address_failure("mx3.example.com", Outcome::no_data);
    auto none = plan_route(dns, "example.com", std::nullopt, "me.example.org", 0);
    check_failure(none, Status::Class::temporary, "4.4.3",
                  "Host or domain name not found. Name service error for name=mx3.example.com type=A: Host found "
                  "but no data record of requested type");
}

TEST_CASE("a bracketed relayhost is used without an MX lookup, on its port") {
    FakeResolver dns;
    dns.set_addresses("smtp.example.net", {"192.0.2.25", "2001:db8::25"});
    auto plan = plan_route(dns, "example.com", relay("[smtp.example.net]:587"), "me.example.org", 0);
    REQUIRE(plan.hops.size() == 1);
    CHECK(plan.hops[0].host == "smtp.example.net");
    CHECK(plan.hops[0].port == 587);
    CHECK(plan.hops[0].addresses == std::vector<std::string>{"2001:db8::25", "192.0.2.25"});
    CHECK(dns.asked == std::vector<std::string>{"ADDR smtp.example.net"});
}

TEST_CASE("a relayhost without brackets is looked up as an MX domain, its hosts used on its port") {
    auto dns = example_dns();
    auto plan = plan_route(dns, "elsewhere.example", relay("example.com:2525"), "me.example.org", 0);
    CHECK(hosts_of(plan) == std::vector<std::string>{"mx1.example.com", "mx2.example.com", "mx3.example.com"});
    for (const auto& hop : plan.hops) CHECK(hop.port == 2525);
    CHECK(dns.asked.at(0) == "MX example.com");
}

TEST_CASE("a relayhost that does not resolve defers: its failures are never permanent") {
    FakeResolver dns;
    auto missing = plan_route(dns, "example.com", relay("relay.example"), "me.example.org", 0);
    check_failure(missing, Status::Class::temporary, "4.1.2",
                  "Host or domain name not found. Name service error for name=relay.example type=MX: Host not found");
    auto bracketed = plan_route(dns, "example.com", relay("[relay.example]"), "me.example.org", 0);
    REQUIRE(bracketed.failure);
    CHECK(bracketed.failure->code() == "4.1.2");
    dns.set_mx("null.example", {{0, "."}});
    auto null_mx = plan_route(dns, "example.com", relay("null.example"), "me.example.org", 0);
    REQUIRE(null_mx.failure);
    CHECK(null_mx.failure->code() == "4.1.10");
}

TEST_CASE("a bracketed relayhost on this host's name or address is no loop (a local content filter)") {
    FakeResolver dns;
    dns.set_addresses("me.example.org", {"127.0.0.1"});
    auto plan = plan_route(dns, "example.com", relay("[me.example.org]:10025"), "me.example.org", 0, {"127.0.0.1"});
    REQUIRE(plan.hops.size() == 1);
    CHECK(plan.hops[0].port == 10025);
    auto literal = plan_route(dns, "example.com", relay("[127.0.0.1]:10025"), "me.example.org", 0, {"127.0.0.1"});
    REQUIRE(literal.hops.size() == 1);
}

TEST_CASE("an address needs no DNS: relayhost, domain literal, or MX host") {
    FakeResolver dns;
    auto relay_plan = plan_route(dns, "example.com", relay("[192.0.2.7]:2525"), "me.example.org", 0);
    REQUIRE(relay_plan.hops.size() == 1);
    CHECK(relay_plan.hops[0].host == "192.0.2.7");
    CHECK(relay_plan.hops[0].addresses == std::vector<std::string>{"192.0.2.7"});
    CHECK(relay_plan.hops[0].port == 2525);
    auto v4 = plan_route(dns, "[192.0.2.8]", std::nullopt, "me.example.org", 0);
    REQUIRE(v4.hops.size() == 1);
    CHECK(v4.hops[0].addresses == std::vector<std::string>{"192.0.2.8"});
    auto v6 = plan_route(dns, "[IPv6:2001:DB8::8]", std::nullopt, "me.example.org", 0);
    REQUIRE(v6.hops.size() == 1);
    CHECK(v6.hops[0].addresses == std::vector<std::string>{"2001:db8::8"});
    CHECK(dns.asked.empty());
    for (const char* bad : {"[300.1.1.1]", "[2001:db8::8]", "[IPv6:192.0.2.1]", "[]"}) {
        INFO(bad);
        auto plan = plan_route(dns, bad, std::nullopt, "me.example.org", 0);
        REQUIRE(plan.failure);
        CHECK(plan.failure->code() == "5.1.2");
    }
    dns.set_mx("lit.example", {{10, "192.0.2.30"}, {20, "mx.lit.example"}});
    dns.set_addresses("mx.lit.example", {"192.0.2.31"});
    auto mx_literal = plan_route(dns, "lit.example", std::nullopt, "me.example.org", 0);
    CHECK(hosts_of(mx_literal) == std::vector<std::string>{"192.0.2.30", "mx.lit.example"});
    CHECK(mx_literal.hops[0].addresses == std::vector<std::string>{"192.0.2.30"});
    CHECK(std::find(dns.asked.begin(), dns.asked.end(), "ADDR 192.0.2.30") == dns.asked.end());
}

TEST_CASE("a host's addresses alternate IPv6 and IPv4, and an address is tried once in the plan") {
    auto dns = example_dns();
    dns.set_addresses("mx1.example.com", {"2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.11", "192.0.2.12"});
    dns.set_addresses("mx2.example.com", {"192.0.2.1", "192.0.2.2", "not an address"});
    dns.set_addresses("mx3.example.com", {"192.0.2.11"});
    auto plan = plan_route(dns, "example.com", std::nullopt, "me.example.org", 0);
    REQUIRE(plan.hops.size() == 2);
    CHECK(plan.hops[0].addresses ==
          std::vector<std::string>{"2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.11", "192.0.2.12"});
    CHECK(plan.hops[1].addresses == std::vector<std::string>{"192.0.2.2"});
}

TEST_CASE("a host named by two MX records is looked up once, at its best preference") {
    auto dns = example_dns();
    dns.set_mx("example.com", {{30, "mx1.example.com"}, {10, "MX1.example.com"}, {20, "mx2.example.com"}});
    auto plan = plan_route(dns, "example.com", std::nullopt, "me.example.org", 0);
    CHECK(hosts_of(plan) == std::vector<std::string>{"MX1.example.com", "mx2.example.com"});
    CHECK(plan.hops[0].preference == 10);
}

TEST_CASE("the plan holds at most 10 hosts and 20 addresses, and looks up at most 10 hosts") {
    FakeResolver dns;
    std::vector<MxRecord> records;
    for (int i = 0; i < 15; ++i) {
        std::string host = "mx" + std::to_string(i) + ".big.example";
        records.push_back({static_cast<uint16_t>(i), host});
        dns.set_addresses(host, {"192.0.2." + std::to_string(i * 3 + 1), "192.0.2." + std::to_string(i * 3 + 2),
                                 "192.0.2." + std::to_string(i * 3 + 3)});
    }
    dns.set_mx("big.example", records);
    auto plan = plan_route(dns, "big.example", std::nullopt, "me.example.org", 0);
    size_t addresses = 0;
    for (const auto& hop : plan.hops) addresses += hop.addresses.size();
    CHECK(plan.hops.size() <= mailroom::net::max_route_hops);
    CHECK(addresses == mailroom::net::max_route_addresses);
    CHECK(dns.asked.size() <= 1 + mailroom::net::max_route_hops);
    // With one address each, the host cap is the one reached.
    for (int i = 0; i < 15; ++i) dns.set_addresses(records[static_cast<size_t>(i)].host, {"198.51.100." + std::to_string(i)});
    dns.asked.clear();
    auto many = plan_route(dns, "big.example", std::nullopt, "me.example.org", 0);
    CHECK(many.hops.size() == mailroom::net::max_route_hops);
    CHECK(dns.asked.size() == 1 + mailroom::net::max_route_hops);
}

TEST_CASE("this host's interface addresses include the loopback address") {
    auto addresses = mailroom::net::interface_addresses();
    REQUIRE(addresses);
    CHECK(std::find(addresses->begin(), addresses->end(), "127.0.0.1") != addresses->end());
}
