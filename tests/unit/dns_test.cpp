// lib/net/dns.hpp: SystemResolver against tests/integration/dns_stub.py on a loopback
// port (skipped when python3 is missing), against a socket that never answers, and
// parse_dns_reply on replies built by hand: every outcome, Postfix's words, and no
// crash on a reply cut short, a compression loop or a pointer out of the message.
// Every resolver here is given its server: none ever asks /etc/resolv.conf's.
#include "net/dns.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using mailroom::net::DnsAnswer;
using mailroom::net::parse_dns_reply;
using mailroom::net::ResolverTiming;
using mailroom::net::SystemResolver;
using mailroom::test::lines_of;
using mailroom::test::seconds_since;
using mailroom::test::slurp;
using mailroom::test::TempDir;
using Outcome = mailroom::net::DnsAnswer::Outcome;

namespace {

constexpr ResolverTiming quick{1, 1};  // one try of one second: a broken stub fails fast

bool have_python() { return std::system("command -v python3 >/dev/null 2>&1") == 0; }

// tests/integration/dns_stub.py serving `zone` (JSON) on 127.0.0.1, a child of the
// test. It ends when its standard input (a pipe held here) closes, or on SIGTERM.
class DnsStub {
public:
    explicit DnsStub(const std::string& zone, bool tcp = true) {
        log_ = dir_.path + "/queries.txt";
        int in[2], out[2];
        REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::dup2(in[0], 0);
            ::dup2(out[1], 1);
            std::string script = MAILROOM_SOURCE_DIR "/tests/integration/dns_stub.py";
            ::execlp("python3", "python3", script.c_str(), "--zone-json", zone.c_str(), "--log", log_.c_str(),
                     tcp ? nullptr : "--no-tcp", nullptr);
            ::_exit(127);
        }
        ::close(in[0]);
        ::close(out[1]);
        stdin_ = in[1];
        std::string line;
        pollfd p{out[0], POLLIN, 0};
        while (line.find('\n') == std::string::npos && ::poll(&p, 1, 10000) == 1) {
            char buf[64];
            ssize_t n = ::read(out[0], buf, sizeof buf);
            if (n <= 0) break;
            line.append(buf, static_cast<size_t>(n));
        }
        ::close(out[0]);
        port_ = std::atoi(line.c_str());
        REQUIRE(port_ > 0);
    }
    ~DnsStub() {
        ::close(stdin_);
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
    DnsStub(const DnsStub&) = delete;
    DnsStub& operator=(const DnsStub&) = delete;

    std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
    SystemResolver resolver() const {
        auto made = SystemResolver::make({server()}, quick);
        REQUIRE(made);
        return std::move(*made);
    }
    // "NAME TYPE udp|tcp" per query received, in order.
    std::vector<std::string> queries() const { return lines_of(slurp(log_)); }

private:
    TempDir dir_;
    std::string log_;
    pid_t pid_ = -1;
    int stdin_ = -1;
    int port_ = 0;
};

#define NEED_PYTHON()                                                                   \
    do {                                                                                \
        if (!have_python()) {                                                           \
            WARN("SKIPPED: python3 not found, SystemResolver is not tried against dns_stub.py"); \
            return;                                                                     \
        }                                                                               \
    } while (0)

const char* zone = R"({
  "example.com":      {"MX": [[20, "mx2.example.com"], [10, "mx1.example.com"], [10, "backup.example.net"]]},
  "mx1.example.com":  {"A": ["192.0.2.1", "192.0.2.2"], "AAAA": ["2001:db8::1"]},
  "v4only.example":   {"A": ["192.0.2.7"]},
  "v6only.example":   {"AAAA": ["2001:db8::7"]},
  "nomx.example":     {"A": ["192.0.2.3"]},
  "www.example.com":  {"CNAME": "MX1.EXAMPLE.COM"},
  "dangling.example": {"CNAME": "nomx.example"},
  "null.example":     {"MX": [[0, "."]]},
  "servfail.example": "SERVFAIL",
  "refused.example":  {"MX": "REFUSED"},
  "halfbad.example":  {"AAAA": "SERVFAIL", "A": ["192.0.2.8"]},
  "zero.example":     {"A": ["0.0.0.0", "192.0.2.9"], "AAAA": ["::"]},
  "badname.example":  {"MX": [[10, "bad host.example"]]},
  "somebad.example":  {"MX": [[10, "bad host.example"], [20, "mx1.example.com"]]},
  "cut.example":      {"MX": "TRUNCATED", "A": "TRUNCATED"},
  "loop.example":     {"MX": "LOOP", "A": "LOOP"},
  "rdloop.example":   {"MX": "RDATA_LOOP"},
  "far.example":      {"MX": "BAD_POINTER"},
  "silent.example":   {"MX": "DROP"},
  "big.example":      {"MX": {"records": [[10, "mx1.example.com"]], "udp_truncated": true}}
})";

// A reply built by hand: header (id 1, QR RD RA, rcode), one question for
// `name`/`type`, and `answers` (bytes written as they come).
std::vector<unsigned char> reply(const std::string& name, int type, int rcode, int ancount,
                                 const std::vector<unsigned char>& answers) {
    std::vector<unsigned char> r = {0, 1, 0x81, static_cast<unsigned char>(0x80 | rcode), 0, 1, 0,
                                    static_cast<unsigned char>(ancount), 0, 0, 0, 0};
    size_t start = 0;
    for (size_t dot = 0; dot <= name.size(); ++dot) {
        if (dot == name.size() || name[dot] == '.') {
            r.push_back(static_cast<unsigned char>(dot - start));
            r.insert(r.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
            start = dot + 1;
        }
    }
    r.push_back(0);
    r.insert(r.end(), {0, static_cast<unsigned char>(type), 0, 1});
    r.insert(r.end(), answers.begin(), answers.end());
    return r;
}

// An answer record owned by the question's name (pointer to offset 12), class IN.
std::vector<unsigned char> record(int type, const std::vector<unsigned char>& rdata) {
    std::vector<unsigned char> r = {0xc0, 12, 0, static_cast<unsigned char>(type), 0, 1, 0, 0, 1, 0,
                                    0, static_cast<unsigned char>(rdata.size())};
    r.insert(r.end(), rdata.begin(), rdata.end());
    return r;
}

DnsAnswer parse(const std::vector<unsigned char>& r, const std::string& name, int type) {
    return parse_dns_reply(r.data(), r.size(), name, type);
}

}  // namespace

TEST_CASE("MX records come back in the order received, compressed names expanded", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto a = resolver.mx("example.com");
    REQUIRE(a.outcome == Outcome::found);
    REQUIRE(a.mx.size() == 3);
    CHECK(a.mx[0].preference == 20);
    CHECK(a.mx[0].host == "mx2.example.com");
    CHECK(a.mx[1].preference == 10);
    CHECK(a.mx[1].host == "mx1.example.com");
    CHECK(a.mx[2].host == "backup.example.net");
    CHECK(a.why.empty());
    CHECK(stub.queries() == std::vector<std::string>{"example.com MX udp"});
}

TEST_CASE("addresses are the AAAA records then the A records", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto a = resolver.addresses("mx1.example.com");
    REQUIRE(a.outcome == Outcome::found);
    CHECK(a.addresses == std::vector<std::string>{"2001:db8::1", "192.0.2.1", "192.0.2.2"});
    CHECK(stub.queries() == std::vector<std::string>{"mx1.example.com AAAA udp", "mx1.example.com A udp"});
    CHECK(resolver.addresses("v4only.example").addresses == std::vector<std::string>{"192.0.2.7"});
    CHECK(resolver.addresses("v6only.example").addresses == std::vector<std::string>{"2001:db8::7"});
}

TEST_CASE("one address family failing temporarily does not hide the other", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto a = resolver.addresses("halfbad.example");
    CHECK(a.outcome == Outcome::found);
    CHECK(a.addresses == std::vector<std::string>{"192.0.2.8"});
}

TEST_CASE("unspecified addresses in an answer are dropped", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto a = resolver.addresses("zero.example");
    CHECK(a.outcome == Outcome::found);
    CHECK(a.addresses == std::vector<std::string>{"192.0.2.9"});
}

TEST_CASE("NXDOMAIN is no_domain, in Postfix's words", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto a = resolver.mx("nowhere.example");
    CHECK(a.outcome == Outcome::no_domain);
    CHECK(a.why == "Name service error for name=nowhere.example type=MX: Host not found");
    auto b = resolver.addresses("nowhere.example");
    CHECK(b.outcome == Outcome::no_domain);
    CHECK(b.why == "Name service error for name=nowhere.example type=A: Host not found");
}

TEST_CASE("NODATA is no_data", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto a = resolver.mx("nomx.example");
    CHECK(a.outcome == Outcome::no_data);
    CHECK(a.why == "Name service error for name=nomx.example type=MX: Host found but no data record of requested type");
    CHECK(resolver.addresses("example.com").outcome == Outcome::no_data);
}

TEST_CASE("SERVFAIL and REFUSED are temporary", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto a = resolver.mx("servfail.example");
    CHECK(a.outcome == Outcome::temporary);
    CHECK(a.why == "Name service error for name=servfail.example type=MX: Host not found, try again");
    CHECK(resolver.addresses("servfail.example").outcome == Outcome::temporary);
    CHECK(resolver.mx("refused.example").outcome == Outcome::temporary);
}

TEST_CASE("a null MX comes back as the root name", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto a = resolver.mx("null.example");
    REQUIRE(a.outcome == Outcome::found);
    REQUIRE(a.mx.size() == 1);
    CHECK(a.mx[0].preference == 0);
    CHECK(a.mx[0].host == ".");
}

TEST_CASE("a CNAME chain is followed as the answer gives it, names compared without regard to case", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto a = resolver.addresses("WWW.Example.COM");
    CHECK(a.outcome == Outcome::found);
    CHECK(a.addresses == std::vector<std::string>{"2001:db8::1", "192.0.2.1", "192.0.2.2"});
    // The alias's target has no MX: the answer holds the CNAME alone.
    auto b = resolver.mx("dangling.example");
    CHECK(b.outcome == Outcome::no_data);
}

TEST_CASE("an MX host that is not a host name is dropped, and alone it makes the answer malformed", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto a = resolver.mx("badname.example");
    CHECK(a.outcome == Outcome::temporary);
    CHECK(a.why == "Name service error for name=badname.example type=MX: Malformed or unexpected name server reply");
    auto b = resolver.mx("somebad.example");
    REQUIRE(b.outcome == Outcome::found);
    REQUIRE(b.mx.size() == 1);
    CHECK(b.mx[0].host == "mx1.example.com");
}

TEST_CASE("a reply truncated on UDP is asked again over TCP", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto a = resolver.mx("big.example");
    REQUIRE(a.outcome == Outcome::found);
    CHECK(a.mx.at(0).host == "mx1.example.com");
    CHECK(stub.queries() == std::vector<std::string>{"big.example MX udp", "big.example MX tcp"});
}

TEST_CASE("a reply truncated on UDP without a TCP server is temporary", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone, false);
    auto resolver = stub.resolver();
    CHECK(resolver.mx("big.example").outcome == Outcome::temporary);
}

TEST_CASE("malformed replies from a server are temporary, never a crash", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    for (const char* name : {"cut.example", "loop.example", "rdloop.example", "far.example"}) {
        INFO(name);
        auto a = resolver.mx(name);
        CHECK(a.outcome == Outcome::temporary);
        CHECK(a.why.find("Malformed or unexpected name server reply") != std::string::npos);
    }
    CHECK(resolver.addresses("cut.example").outcome == Outcome::temporary);
    CHECK(resolver.addresses("loop.example").outcome == Outcome::temporary);
}

TEST_CASE("a server that drops a query leaves it temporary after the timeout", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    auto start = std::chrono::steady_clock::now();
    auto a = resolver.mx("silent.example");
    CHECK(a.outcome == Outcome::temporary);
    CHECK(a.why == "Name service error for name=silent.example type=MX: Host not found, try again");
    CHECK(seconds_since(start) < 5);
}

TEST_CASE("a server that never answers makes every query temporary within the timeout set", "[dns]") {
    // A UDP socket nobody reads: the queries go nowhere else.
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0);
    socklen_t length = sizeof sin;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &length) == 0);
    auto made = SystemResolver::make({"127.0.0.1:" + std::to_string(ntohs(sin.sin_port))}, quick);
    REQUIRE(made);
    auto start = std::chrono::steady_clock::now();
    CHECK(made->mx("example.com").outcome == Outcome::temporary);
    auto a = made->addresses("mx1.example.com");
    CHECK(a.outcome == Outcome::temporary);
    CHECK(a.why.find("Host not found, try again") != std::string::npos);
    // Three queries of one try of one second each.
    CHECK(seconds_since(start) < 6);
    ::close(fd);
}

TEST_CASE("a name that is not a host name is no_domain and never asked", "[dns]") {
    NEED_PYTHON();
    DnsStub stub(zone);
    auto resolver = stub.resolver();
    for (std::string name : {std::string(""), std::string("."), std::string("a..b"), std::string("bad name.example"),
                             std::string(64, 'a') + ".example", std::string("a\nb.example"),
                             std::string("a\0b.example", 11), std::string("-x.") + std::string(250, 'a')}) {
        auto a = resolver.mx(name);
        CHECK(a.outcome == Outcome::no_domain);
        CHECK(a.why.find("Malformed domain name") != std::string::npos);
        CHECK(a.why.find('\n') == std::string::npos);
    }
    CHECK(stub.queries().empty());
}

TEST_CASE("an address given to addresses() is its own answer, without a query", "[dns]") {
    auto made = SystemResolver::make({"127.0.0.1:9"}, quick);
    REQUIRE(made);
    auto a = made->addresses("192.0.2.5");
    CHECK(a.outcome == Outcome::found);
    CHECK(a.addresses == std::vector<std::string>{"192.0.2.5"});
    CHECK(made->addresses("2001:db8::5").addresses == std::vector<std::string>{"2001:db8::5"});
}

TEST_CASE("smtp_dns_servers takes IPv4 ADDR or ADDR:PORT, at most three") {
    CHECK(SystemResolver::make({}, quick));
    CHECK(SystemResolver::make({"127.0.0.1"}, quick));
    CHECK(SystemResolver::make({"127.0.0.1:5353", "127.0.0.2", "127.0.0.3:53"}, quick));
    auto four = SystemResolver::make({"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}, quick);
    REQUIRE(!four);
    CHECK(four.error().message() == "4 DNS servers given: glibc's resolver takes at most 3");
    for (const char* bad : {"::1", "[::1]:53", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:", "dns.example",
                            "127.0.0.1:5x", "", " 127.0.0.1"}) {
        INFO(bad);
        auto made = SystemResolver::make({bad}, quick);
        REQUIRE(!made);
        CHECK(made.error().message().find("DNS server") == 0);
    }
    auto v6 = SystemResolver::make({"::1"}, quick);
    CHECK(v6.error().message().find("IPv6 server is not supported") != std::string::npos);
    CHECK(!SystemResolver::make({"127.0.0.1"}, ResolverTiming{-1, 1}));
    CHECK(!SystemResolver::make({"127.0.0.1"}, ResolverTiming{31, 1}));
    CHECK(!SystemResolver::make({"127.0.0.1"}, ResolverTiming{1, 6}));
    CHECK(SystemResolver::make({"127.0.0.1"}, ResolverTiming{30, 5}));
}

TEST_CASE("a reply is read with its answer codes and records") {
    auto mx = reply("example.com", 15, 0, 2, {});
    // MX 10 mx.example.com (compressed: "mx" then a pointer to example.com at 12),
    // MX 20 example.com (a pointer alone).
    auto one = record(15, {0, 10, 2, 'm', 'x', 0xc0, 12});
    auto two = record(15, {0, 20, 0xc0, 12});
    mx.insert(mx.end(), one.begin(), one.end());
    mx.insert(mx.end(), two.begin(), two.end());
    auto a = parse(mx, "example.com", 15);
    REQUIRE(a.outcome == Outcome::found);
    REQUIRE(a.mx.size() == 2);
    CHECK(a.mx[0].host == "mx.example.com");
    CHECK(a.mx[1].preference == 20);
    CHECK(a.mx[1].host == "example.com");

    CHECK(parse(reply("example.com", 15, 3, 0, {}), "example.com", 15).outcome == Outcome::no_domain);
    CHECK(parse(reply("example.com", 15, 2, 0, {}), "example.com", 15).outcome == Outcome::temporary);
    CHECK(parse(reply("example.com", 15, 5, 0, {}), "example.com", 15).outcome == Outcome::temporary);
    CHECK(parse(reply("example.com", 15, 0, 0, {}), "example.com", 15).outcome == Outcome::no_data);
    // Records of another owner (no CNAME leads there) are not the answer.
    auto other = reply("example.com", 1, 0, 1, {1, 'x', 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 192, 0, 2, 1});
    CHECK(parse(other, "example.com", 1).outcome == Outcome::no_data);
}

TEST_CASE("a reply cut at any length is malformed, never a crash") {
    auto full = reply("example.com", 15, 0, 1, record(15, {0, 10, 2, 'm', 'x', 0xc0, 12}));
    REQUIRE(parse(full, "example.com", 15).outcome == Outcome::found);
    for (size_t size = 0; size < full.size(); ++size) {
        INFO(size);
        std::vector<unsigned char> cut(full.begin(), full.begin() + static_cast<long>(size));
        auto a = parse(cut, "example.com", 15);
        CHECK(a.outcome == Outcome::temporary);
        CHECK(a.why == "Name service error for name=example.com type=MX: Malformed or unexpected name server reply");
    }
}

TEST_CASE("compression loops and pointers out of the reply are malformed") {
    // The owner name of the answer record points at itself (offset 29).
    auto self = reply("example.com", 1, 0, 1, {0xc0, 29, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 192, 0, 2, 1});
    CHECK(parse(self, "example.com", 1).outcome == Outcome::temporary);
    // Two names pointing at each other: the MX exchange at 43 points to 45, which points to 43.
    auto pair = reply("example.com", 15, 0, 1, record(15, {0, 10, 0xc0, 45, 0xc0, 43}));
    CHECK(parse(pair, "example.com", 15).outcome == Outcome::temporary);
    // A pointer past the end.
    auto far = reply("example.com", 15, 0, 1, record(15, {0, 10, 0xff, 0xff}));
    CHECK(parse(far, "example.com", 15).outcome == Outcome::temporary);
    // A label running past its record's data.
    auto spill = reply("example.com", 15, 0, 1, record(15, {0, 10, 9, 'm', 'x'}));
    CHECK(parse(spill, "example.com", 15).outcome == Outcome::temporary);
}

TEST_CASE("records whose data has the wrong size are malformed") {
    CHECK(parse(reply("example.com", 1, 0, 1, record(1, {192, 0, 2, 1, 7})), "example.com", 1).outcome ==
          Outcome::temporary);
    CHECK(parse(reply("example.com", 28, 0, 1, record(28, {0x20, 1, 0xd, 0xb8})), "example.com", 28).outcome ==
          Outcome::temporary);
    CHECK(parse(reply("example.com", 15, 0, 1, record(15, {0, 10})), "example.com", 15).outcome ==
          Outcome::temporary);
    // An exchange name that ends before its record's data does.
    CHECK(parse(reply("example.com", 15, 0, 1, record(15, {0, 10, 0xc0, 12, 0})), "example.com", 15).outcome ==
          Outcome::temporary);
    auto good = parse(reply("example.com", 1, 0, 1, record(1, {192, 0, 2, 1})), "example.com", 1);
    CHECK(good.outcome == Outcome::found);
    CHECK(good.addresses == std::vector<std::string>{"192.0.2.1"});
}

TEST_CASE("every octet of a reply flipped gives an outcome, never a crash") {
    auto full = reply("example.com", 15, 0, 2, record(15, {0, 10, 2, 'm', 'x', 0xc0, 12}));
    auto second = record(1, {192, 0, 2, 1});
    full.insert(full.end(), second.begin(), second.end());
    for (size_t at = 0; at < full.size(); ++at) {
        for (unsigned char value : {0x00, 0x01, 0x3f, 0x40, 0xc0, 0xff}) {
            auto changed = full;
            changed[at] = value;
            auto a = parse(changed, "example.com", 15);
            for (const auto& mx : a.mx) CHECK((mx.host == "." || mailroom::net::is_host_name(mx.host)));
        }
    }
}
