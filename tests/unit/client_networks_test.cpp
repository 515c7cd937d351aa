// Client networks (mynetworks, the access file's client CIDRs): the forms a network
// is written in, prefixes at and past their ends, host bits, IPv6 and IPv4-mapped
// clients, and text that is not an address.
#include "smtp/client_networks.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using mailroom::smtp::IpAddress;
using mailroom::smtp::Network;
using mailroom::smtp::NetworkList;

namespace {

Network net(std::string_view text) {
    auto r = Network::parse(text);
    INFO("network: " << text << (r ? "" : " error: " + r.error().message()));
    REQUIRE(r.has_value());
    return *r;
}

std::string error_of(std::string_view text) {
    auto r = Network::parse(text);
    INFO("network: " << text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().errno_value() == 0);
    return r.error().message();
}

}  // namespace

TEST_CASE("a network is an IPv4 address with a prefix, or one host without one", "[networks]") {
    auto loopback = net("127.0.0.0/8");
    CHECK(loopback.text() == "127.0.0.0/8");
    CHECK(loopback.contains("127.0.0.1"));
    CHECK(loopback.contains("127.255.255.255"));
    CHECK_FALSE(loopback.contains("128.0.0.1"));
    CHECK_FALSE(loopback.contains("126.255.255.255"));

    auto host = net("10.1.2.3");
    CHECK(host.text() == "10.1.2.3/32");
    CHECK(host.prefix_length() == 32);
    CHECK(host.contains("10.1.2.3"));
    CHECK_FALSE(host.contains("10.1.2.4"));

    auto odd = net("192.168.1.128/25");
    CHECK(odd.contains("192.168.1.128"));
    CHECK(odd.contains("192.168.1.255"));
    CHECK_FALSE(odd.contains("192.168.1.127"));
}

TEST_CASE("prefixes /0 /32 and /128 are the ends of their ranges", "[networks]") {
    auto everyone = net("0.0.0.0/0");
    CHECK(everyone.contains("1.2.3.4"));
    CHECK(everyone.contains("255.255.255.255"));
    CHECK(everyone.contains("::ffff:8.8.8.8"));
    CHECK_FALSE(everyone.contains("2001:db8::1"));  // IPv4 networks take in IPv4 clients only

    auto all_v6 = net("::/0");
    CHECK(all_v6.contains("2001:db8::1"));
    CHECK(all_v6.contains("::1"));
    CHECK_FALSE(all_v6.contains("192.0.2.1"));
    CHECK_FALSE(all_v6.contains("::ffff:192.0.2.1"));  // an IPv4 client, mapped

    CHECK(net("192.0.2.1/32").contains("192.0.2.1"));
    CHECK_FALSE(net("192.0.2.1/32").contains("192.0.2.0"));
    CHECK(net("2001:db8::1/128").contains("2001:db8::1"));
    CHECK_FALSE(net("2001:db8::1/128").contains("2001:db8::2"));
}

TEST_CASE("a prefix past /32 for IPv4 or /128 for IPv6 is an error", "[networks]") {
    CHECK_THAT(error_of("10.0.0.0/33"), Catch::Contains("/33 is out of range for IPv4 (0 to 32)"));
    CHECK_THAT(error_of("2001:db8::/129"), Catch::Contains("/129 is out of range for IPv6 (0 to 128)"));
    CHECK_THAT(error_of("10.0.0.0/"), Catch::Contains("no prefix length"));
    CHECK_THAT(error_of("10.0.0.0/-1"), Catch::Contains("is not 1 to 3 decimal digits"));
    CHECK_THAT(error_of("10.0.0.0/+8"), Catch::Contains("is not 1 to 3 decimal digits"));
    CHECK_THAT(error_of("10.0.0.0/ 8"), Catch::Contains("is not 1 to 3 decimal digits"));
    CHECK_THAT(error_of("10.0.0.0/0008"), Catch::Contains("is not 1 to 3 decimal digits"));
    CHECK_THAT(error_of("10.0.0.0/99999999999999999999"), Catch::Contains("is not 1 to 3 decimal digits"));
    CHECK_THAT(error_of("10.0.0.0/8/8"), Catch::Contains("not an IPv4 or IPv6 address"));
}

TEST_CASE("host bits set beyond the prefix are an error naming the network meant, as in Postfix", "[networks]") {
    auto e = error_of("10.1.2.3/8");
    CHECK_THAT(e, Catch::Contains("'10.1.2.3/8'"));
    CHECK_THAT(e, Catch::Contains("host bits set beyond the /8 prefix"));
    CHECK_THAT(e, Catch::Contains("10.0.0.0/8"));
    CHECK_THAT(error_of("192.168.1.1/31"), Catch::Contains("192.168.1.0/31"));
    CHECK_THAT(error_of("0.0.0.1/0"), Catch::Contains("host bits"));
    CHECK_THAT(error_of("2001:db8::1/64"), Catch::Contains("[2001:db8::]/64"));
    CHECK_THAT(error_of("::1/0"), Catch::Contains("host bits"));
    CHECK_THAT(error_of("::ffff:10.1.2.3/104"), Catch::Contains("10.0.0.0/8"));
}

TEST_CASE("IPv6 networks are written with or without brackets around the address", "[networks]") {
    CHECK(net("[::1]/128").text() == "[::1]/128");
    CHECK(net("::1/128").text() == "[::1]/128");
    CHECK(net("::1").text() == "[::1]/128");
    CHECK(net("[::1]").text() == "[::1]/128");
    auto doc = net("[2001:db8::]/32");
    CHECK(doc.text() == "[2001:db8::]/32");
    CHECK(doc.contains("2001:db8::1"));
    CHECK(doc.contains("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    CHECK_FALSE(doc.contains("2001:db9::1"));
    CHECK(net("2001:DB8:0:0::/32") == doc);  // one canonical form
    CHECK(net("[127.0.0.1]").text() == "127.0.0.1/32");
    CHECK(net("fe80::/10").contains("fe80::1"));
    CHECK(net("fe80::/10").contains("febf::1"));
    CHECK_FALSE(net("fe80::/10").contains("fec0::1"));
}

TEST_CASE("an IPv4-mapped client address matches IPv4 networks", "[networks]") {
    auto lan = net("192.0.2.0/24");
    CHECK(lan.contains("::ffff:192.0.2.1"));
    CHECK(lan.contains("::FFFF:192.0.2.200"));
    CHECK(lan.contains("::ffff:c000:0201"));
    CHECK_FALSE(lan.contains("::ffff:192.0.3.1"));
    CHECK_FALSE(lan.contains("::192.0.2.1"));  // IPv4-compatible, not mapped: an IPv6 address
    CHECK_FALSE(lan.contains("64:ff9b::192.0.2.1"));

    // Written mapped in a pattern, it is the IPv4 network it maps.
    auto mapped = net("::ffff:10.0.0.0/104");
    CHECK(mapped.text() == "10.0.0.0/8");
    CHECK(mapped.contains("10.9.9.9"));
    CHECK(mapped.contains("::ffff:10.9.9.9"));
    CHECK(net("::ffff:127.0.0.1").text() == "127.0.0.1/32");
    // Shorter than /96 it is an IPv6 network and no IPv4 client is in it.
    CHECK_FALSE(net("::/80").contains("10.0.0.1"));
    CHECK_FALSE(net("::/80").contains("::ffff:10.0.0.1"));
    CHECK(net("::/80").contains("::1"));

    CHECK(IpAddress::parse("::ffff:192.0.2.1")->is_v4());
    CHECK(IpAddress::parse("::ffff:192.0.2.1")->text() == "192.0.2.1");
    CHECK(*IpAddress::parse("::ffff:192.0.2.1") == *IpAddress::parse("192.0.2.1"));
}

TEST_CASE("text that is not an address is not a network and matches nothing", "[networks]") {
    for (const char* bad : {"1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4a", "01.2.3.4", "[::1", "::1]", "[::1]]",
                            "[[::1]]", "[::1/128]", "[]", "[]/8", "::1::2", "2001:db8::g", "localhost",
                            "example.com/24", "fe80::1%eth0", " 10.0.0.1", "10.0.0.1 ", "/8", "", "*"}) {
        INFO(bad);
        auto r = Network::parse(bad);
        CHECK_FALSE(r.has_value());
    }
    CHECK_THAT(error_of("[::1"), Catch::Contains("'[' without its ']'"));
    CHECK_THAT(error_of("::1]"), Catch::Contains("brackets"));
    CHECK_THAT(error_of("1.2.3"), Catch::Contains("network '1.2.3': not an IPv4 or IPv6 address"));
    CHECK(error_of(std::string("10.0.0.1\0/8", 11)).find('\0') == std::string::npos);

    auto everyone = net("0.0.0.0/0");
    for (const char* client : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "unknown", "[192.0.2.1]", "192.0.2.1 ",
                               "fe80::1%eth0", "x"}) {
        INFO(client);
        CHECK_FALSE(everyone.contains(client));
        CHECK_FALSE(net("::/0").contains(client));
    }
    // A NUL would cut the C string inet_pton reads: the rest must not be ignored.
    CHECK_FALSE(everyone.contains(std::string_view("192.0.2.1\0junk", 14)));
    CHECK_FALSE(IpAddress::parse(std::string(100, '1')).has_value());
}

TEST_CASE("mynetworks: every item is a network, an error names the bad item", "[networks]") {
    auto list = NetworkList::parse({"127.0.0.0/8", "[::1]/128", "192.0.2.0/24"});
    REQUIRE(list.has_value());
    CHECK_FALSE(list->empty());
    CHECK(list->networks().size() == 3);
    CHECK(list->contains("127.0.0.1"));
    CHECK(list->contains("::1"));
    CHECK(list->contains("::ffff:192.0.2.9"));
    CHECK(list->contains("192.0.2.9"));
    CHECK_FALSE(list->contains("::2"));
    CHECK_FALSE(list->contains("198.51.100.1"));
    CHECK_FALSE(list->contains("not an address"));

    auto bad = NetworkList::parse({"127.0.0.0/8", "10.1.2.3/8", "::1"});
    REQUIRE_FALSE(bad.has_value());
    CHECK_THAT(bad.error().message(), Catch::StartsWith("network '10.1.2.3/8': host bits"));
    auto garbage = NetworkList::parse({"1.2.3"});
    REQUIRE_FALSE(garbage.has_value());
    CHECK_THAT(garbage.error().message(), Catch::Contains("'1.2.3'"));
}

TEST_CASE("an empty mynetworks contains no client", "[networks]") {
    auto list = NetworkList::parse({});
    REQUIRE(list.has_value());
    CHECK(list->empty());
    CHECK_FALSE(list->contains("127.0.0.1"));
    CHECK_FALSE(list->contains("::1"));
}
