// Any bytes as an smtpd_access_file, as a network and as a client address: a table
// or an error, never a crash. An error is one line naming the file; a table never
// holds more rules than the text has lines, and every decision it gives names one of
// those lines and carries a TEXT that can go on an SMTP reply line as is. A network
// that parses prints as text that parses back to it and contains its own address; an
// address prints as text that parses back to it.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/access_table.hpp"
#include "smtp/client_networks.hpp"

using namespace mailroom::smtp;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

bool reply_safe(std::string_view text) {
    for (unsigned char c : text)
        if (c < 0x20 || c >= 0x7f) return false;
    return true;
}

void check_decision(const std::optional<AccessDecision>& d, size_t lines) {
    if (!d) return;
    require(d->line >= 1 && d->line <= lines);
    require(d->text.size() <= AccessTable::max_text_bytes && reply_safe(d->text));
    require(d->action == AccessAction::ok || d->action == AccessAction::reject || d->action == AccessAction::defer);
}

void check_network(std::string_view text) {
    if (auto ip = IpAddress::parse(text)) {
        auto again = IpAddress::parse(ip->text());
        require(again && *again == *ip);
    }
    auto network = Network::parse(text);
    if (!network) {
        const std::string message = network.error().message();
        require(message.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
        return;
    }
    const std::string shown = network->text();
    auto again = Network::parse(shown);
    require(again && *again == *network && again->text() == shown);
    // "a.b.c.d/N" or "[v6]/N": its own address is in it.
    std::string address = shown.substr(0, shown.rfind('/'));
    if (!address.empty() && address.front() == '[') address = address.substr(1, address.size() - 2);
    require(network->contains(address));
    auto list = NetworkList::parse({std::string(text)});
    require(list && list->contains(address));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    check_network(text);

    std::vector<std::string_view> lines;
    for (std::string_view rest = text; !rest.empty();) {
        auto newline = rest.find('\n');
        lines.push_back(rest.substr(0, newline));
        rest.remove_prefix(newline == rest.npos ? rest.size() : newline + 1);
    }
    auto table = AccessTable::parse(text, "fuzz");
    if (!table) {
        const std::string message = table.error().message();
        require(message.starts_with("fuzz:"));
        require(message.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
        return 0;
    }
    require(table->size() <= lines.size());
    // Every line's words, and the lines themselves, as what a client might send.
    std::vector<std::string_view> probes{"", "unknown", "127.0.0.1", "::1", "::ffff:10.0.0.1"};
    for (auto line : lines) {
        probes.push_back(line);
        for (size_t start = 0; start < line.size() && probes.size() < 64;) {
            auto end = line.find_first_of(" \t", start);
            if (end == line.npos) end = line.size();
            if (end > start) probes.push_back(line.substr(start, end - start));
            start = end + 1;
        }
    }
    for (auto probe : probes) {
        check_decision(table->client(probe, probe), lines.size());
        check_decision(table->client("192.0.2.1", probe), lines.size());
        check_decision(table->helo(probe), lines.size());
        check_decision(table->sender(probe), lines.size());
        check_decision(table->recipient(probe), lines.size());
    }
    return 0;
}
