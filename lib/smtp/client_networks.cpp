#include "smtp/client_networks.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>

#include <cstring>

namespace mailroom::smtp {

namespace {

// The longest text inet_ntop writes for IPv6 ("ffff:...:255.255.255.255"), 45 octets.
constexpr size_t max_address_text = INET6_ADDRSTRLEN - 1;

constexpr std::array<uint8_t, 12> v4_mapped_prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_v4_mapped(const std::array<uint8_t, 16>& bytes) {
    return std::memcmp(bytes.data(), v4_mapped_prefix.data(), v4_mapped_prefix.size()) == 0;
}

// The address bits from `prefix` on are all zero.
bool host_bits_clear(const std::array<uint8_t, 16>& bytes, unsigned bits, unsigned prefix) {
    for (unsigned i = prefix; i < bits; ++i)
        if (bytes[i / 8] & (0x80u >> (i % 8))) return false;
    return true;
}

std::array<uint8_t, 16> clear_host_bits(std::array<uint8_t, 16> bytes, unsigned bits, unsigned prefix) {
    for (unsigned i = prefix; i < bits; ++i) bytes[i / 8] &= static_cast<uint8_t>(~(0x80u >> (i % 8)));
    return bytes;
}

// What inet_pton makes of text, before IPv4-mapped addresses are folded into IPv4.
struct RawAddress {
    bool v4 = true;
    std::array<uint8_t, 16> bytes{};
};

std::optional<RawAddress> parse_raw(std::string_view text) {
    // inet_pton reads a C string: a NUL inside would cut the text short and let
    // "1.2.3.4\0junk" pass for 1.2.3.4.
    if (text.empty() || text.size() > max_address_text || text.find('\0') != text.npos) return std::nullopt;
    const std::string copy(text);
    RawAddress raw;
    if (::inet_pton(AF_INET, copy.c_str(), raw.bytes.data()) == 1) return raw;
    raw.v4 = false;
    if (::inet_pton(AF_INET6, copy.c_str(), raw.bytes.data()) == 1) return raw;
    return std::nullopt;
}

std::string shown(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, 80)) {
        auto byte = static_cast<unsigned char>(c);
        out += byte < 0x20 || byte >= 0x7f ? '?' : c;
    }
    return text.size() > 80 ? out + "..." : out;
}

core::Unexpected bad_network(std::string_view text, std::string_view what) {
    return core::unexpected_input(fmt::format("network '{}': {}", shown(text), what));
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    auto raw = parse_raw(text);
    if (!raw) return std::nullopt;
    IpAddress address;
    if (raw->v4) {
        address.bytes_ = raw->bytes;
    } else if (is_v4_mapped(raw->bytes)) {
        std::memcpy(address.bytes_.data(), raw->bytes.data() + 12, 4);
    } else {
        address.v4_ = false;
        address.bytes_ = raw->bytes;
    }
    return address;
}

std::string IpAddress::text() const {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(v4_ ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
    return buf;
}

core::Result<Network> Network::parse(std::string_view text) {
    if (text.empty()) return core::unexpected_input("network '': empty");
    std::string_view address_text = text;
    std::optional<std::string_view> prefix_text;
    if (auto slash = text.rfind('/'); slash != text.npos) {
        address_text = text.substr(0, slash);
        prefix_text = text.substr(slash + 1);
    }
    if (!address_text.empty() && address_text.front() == '[') {
        if (address_text.size() < 2 || address_text.back() != ']')
            return bad_network(text, "'[' without its ']' (write [::1]/128)");
        address_text = address_text.substr(1, address_text.size() - 2);
    }
    if (address_text.find_first_of("[]") != address_text.npos)
        return bad_network(text, "brackets enclose the address only (write [::1]/128)");
    auto raw = parse_raw(address_text);
    if (!raw) return bad_network(text, "not an IPv4 or IPv6 address");
    const unsigned bits = raw->v4 ? 32 : 128;
    unsigned prefix = bits;
    if (prefix_text) {
        if (prefix_text->empty()) return bad_network(text, "no prefix length after '/'");
        if (prefix_text->size() > 3 || prefix_text->find_first_not_of("0123456789") != prefix_text->npos)
            return bad_network(text, fmt::format("prefix length '{}' is not 1 to 3 decimal digits", shown(*prefix_text)));
        prefix = 0;
        for (char c : *prefix_text) prefix = prefix * 10 + static_cast<unsigned>(c - '0');
        if (prefix > bits)
            return bad_network(text, fmt::format("prefix length /{} is out of range for {} (0 to {})", prefix,
                                                 raw->v4 ? "IPv4" : "IPv6", bits));
    }
    if (!host_bits_clear(raw->bytes, bits, prefix)) {
        // Postfix refuses it too: "10.1.2.3/8" is most likely a typo for a host or a
        // network, and guessing either would trust the wrong clients.
        Network meant;
        meant.address_.v4_ = raw->v4;
        meant.address_.bytes_ = clear_host_bits(raw->bytes, bits, prefix);
        meant.prefix_ = prefix;
        if (!raw->v4 && is_v4_mapped(meant.address_.bytes_) && prefix >= 96) {
            // Shown as the IPv4 network it stands for, as parse would store it.
            std::memmove(meant.address_.bytes_.data(), meant.address_.bytes_.data() + 12, 4);
            std::memset(meant.address_.bytes_.data() + 4, 0, 12);
            meant.address_.v4_ = true;
            meant.prefix_ = prefix - 96;
        }
        return bad_network(text, fmt::format("host bits set beyond the /{} prefix (the network is {}, "
                                             "one host is written without a prefix)",
                                             prefix, meant.text()));
    }
    Network network;
    network.prefix_ = prefix;
    if (!raw->v4 && is_v4_mapped(raw->bytes) && prefix >= 96) {
        // ::ffff:a.b.c.d/N is the IPv4 network a.b.c.d/(N-96): clients come as IPv4.
        std::memcpy(network.address_.bytes_.data(), raw->bytes.data() + 12, 4);
        network.prefix_ = prefix - 96;
    } else {
        network.address_.v4_ = raw->v4;
        network.address_.bytes_ = raw->bytes;
    }
    return network;
}

bool Network::contains(const IpAddress& address) const {
    if (address.v4_ != address_.v4_) return false;
    const unsigned whole = prefix_ / 8;
    if (std::memcmp(address.bytes_.data(), address_.bytes_.data(), whole) != 0) return false;
    const unsigned rest = prefix_ % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<uint8_t>(0xffu << (8 - rest));
    return (address.bytes_[whole] & mask) == address_.bytes_[whole];
}

bool Network::contains(std::string_view address) const {
    auto parsed = IpAddress::parse(address);
    return parsed && contains(*parsed);
}

std::string Network::text() const {
    if (address_.v4_) return fmt::format("{}/{}", address_.text(), prefix_);
    return fmt::format("[{}]/{}", address_.text(), prefix_);
}

core::Result<NetworkList> NetworkList::parse(const std::vector<std::string>& items) {
    NetworkList list;
    list.networks_.reserve(items.size());
    for (const auto& item : items) {
        auto network = Network::parse(item);
        if (!network) return core::unexpected(network.error());  // it names the item; the caller the key
        list.networks_.push_back(*network);
    }
    return list;
}

bool NetworkList::contains(const IpAddress& address) const {
    for (const auto& network : networks_)
        if (network.contains(address)) return true;
    return false;
}

bool NetworkList::contains(std::string_view address) const {
    auto parsed = IpAddress::parse(address);
    return parsed && contains(*parsed);
}

}  // namespace mailroom::smtp
