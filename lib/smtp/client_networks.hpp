// Client networks: `mynetworks` (SPEC 2, 7: who may relay without AUTH) and the
// address and CIDR patterns of the access file's `client` lines (access_table.hpp).
// A Network is an IPv4 or IPv6 prefix; a NetworkList is mynetworks' items in order.
//
// Invariants: a Network never has host bits set beyond its prefix (Postfix refuses
// "10.1.2.3/8" and so do we: a typo there would trust the wrong hosts). An
// IPv4-mapped IPv6 address ("::ffff:192.0.2.1", what a dual-stack socket reports for
// an IPv4 client) is the IPv4 address it maps, both as a client address and in a
// pattern ("::ffff:10.0.0.0/104" is 10.0.0.0/8); IPv4 networks match IPv4 clients
// only and IPv6 networks IPv6 clients only (`::/0` does not take in IPv4: write
// `0.0.0.0/0` as well).
// Must never: resolve a name (no DNS here: patterns are numbers), or take text that
// is not an address for one (a NUL, a zone "%eth0", "1.2.3" all match nothing).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace mailroom::smtp {

// One IPv4 or IPv6 address, parsed once to be compared with many networks.
class IpAddress {
public:
    // Text as inet_ntop writes it ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"),
    // without brackets; nothing when it is not exactly an address.
    static std::optional<IpAddress> parse(std::string_view text);
    bool is_v4() const { return v4_; }
    std::string text() const;  // "192.0.2.1", "2001:db8::1" (a mapped address as IPv4)
    bool operator==(const IpAddress&) const = default;

private:
    friend class Network;
    bool v4_ = true;
    std::array<uint8_t, 16> bytes_{};  // IPv4: the first 4
};

class Network {
public:
    // "127.0.0.0/8", "10.1.2.3" (one host), "[::1]/128", "::1/128", "[2001:db8::]/32",
    // "::1". Brackets may enclose the address (either family), never the "/N".
    // The prefix is 1 to 3 decimal digits, 0-32 for IPv4, 0-128 for IPv6.
    // Host bits set beyond the prefix ("10.1.2.3/8") are an error, as in Postfix.
    // An error is an input error naming the text and what is wrong with it.
    static core::Result<Network> parse(std::string_view text);
    // address: the client address text as inet_ntop writes it ("192.0.2.1",
    // "2001:db8::1", "::ffff:192.0.2.1" — an IPv4-mapped address matches IPv4
    // networks). Text that is not an address matches nothing.
    bool contains(std::string_view address) const;
    bool contains(const IpAddress& address) const;
    // "127.0.0.0/8", "[::1]/128": always with its prefix, IPv6 in brackets (as the
    // mynetworks default is written), in the canonical form of inet_ntop.
    std::string text() const;
    unsigned prefix_length() const { return prefix_; }
    bool operator==(const Network&) const = default;

private:
    Network() = default;
    IpAddress address_;
    unsigned prefix_ = 32;
};

class NetworkList {
public:
    // mynetworks' items (core::Config::list gives them), in order. An error names the
    // bad item ("network '10.1.2.3/8': host bits ..."), not the key: the caller adds
    // "mynetworks: ". No items: an empty list, which contains nothing (no client
    // relays without AUTH).
    static core::Result<NetworkList> parse(const std::vector<std::string>& items);
    bool contains(std::string_view address) const;
    bool contains(const IpAddress& address) const;
    bool empty() const { return networks_.empty(); }
    const std::vector<Network>& networks() const { return networks_; }

private:
    std::vector<Network> networks_;
};

}  // namespace mailroom::smtp
