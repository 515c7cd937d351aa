#include "queue/queue_entry.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>

namespace mailroom::mail {

namespace {

constexpr std::string_view header_start = "mailroom-queue ";
constexpr std::string_view header_middle = " message ";

// Caps on fields, each above anything a real value needs: a longer one is not
// something we wrote.
constexpr size_t max_address = 998;      // a line's worth; Address itself stops at 256
constexpr size_t max_orcpt = 500;        // RFC 3461 4.2
constexpr size_t max_envid = 100;        // RFC 3461 4.4
constexpr size_t max_name = 255;         // host names, HELO argument, AUTH user
constexpr size_t max_tls_word = 100;     // "TLSv1.3", "TLS_AES_256_GCM_SHA384"
constexpr size_t max_provenance = 4200;  // a path (PATH_MAX) and ":LINE"
constexpr size_t max_target = 8192;      // a command line from aliases or .forward

// The "with" keywords of RFC 3848 and RFC 6531 (the IANA Mail Transmission Types),
// plus "local" for a sendmail submission.
constexpr std::array<std::string_view, 19> protocols = {
    "SMTP",     "ESMTP",     "ESMTPA",     "ESMTPS",     "ESMTPSA",   "LMTP",     "LMTPA",
    "LMTPS",    "LMTPSA",    "UTF8SMTP",   "UTF8SMTPA",  "UTF8SMTPS", "UTF8SMTPSA", "UTF8LMTP",
    "UTF8LMTPA", "UTF8LMTPS", "UTF8LMTPSA", "local",     "",
};

std::string clean_text(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c == '\n' || c == '\r' || c == '\0') c = ' ';
    }
    return out;
}

// A field quoted into an error message: printable, short.
std::string shown(std::string_view text) {
    std::string out;
    for (unsigned char c : text.substr(0, 40)) out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
    return out + (text.size() > 40 ? "..." : "");
}

template <typename Int>
bool parse_int(std::string_view text, Int& out) {
    if (text.empty()) return false;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && ptr == text.data() + text.size();
}

// Splits off the first space-separated word of `rest`.
std::string_view next_word(std::string_view& rest) {
    auto space = rest.find(' ');
    std::string_view word = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
    return word;
}

core::Unexpected corrupt(std::string what) { return core::unexpected_errno(std::move(what), EBADMSG); }
core::Unexpected refused(std::string what) { return core::unexpected_errno(std::move(what), EINVAL); }

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }
bool has_control(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](unsigned char c) { return is_control(c); });
}
// NUL, CR and LF cannot be stored on a line; TAB may (a command may hold one).
bool has_line_breaker(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](unsigned char c) { return is_control(c) && c != '\t'; });
}
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A word: no space, no control character; UTF-8 bytes allowed.
std::string word_problem(std::string_view what, std::string_view word, size_t max) {
    if (word.empty()) return fmt::format("empty {}", what);
    if (word.size() > max) return fmt::format("{} longer than {} octets", what, max);
    for (unsigned char c : word) {
        if (c == ' ' || is_control(c)) return fmt::format("{} \"{}\" holds a space or control character", what, shown(word));
    }
    return {};
}

// The text between angle brackets, as stored (never holds a control character:
// Address refuses them at the door).
std::string address_problem(std::string_view what, std::string_view address, bool may_be_empty) {
    if (address.empty() && !may_be_empty) return fmt::format("empty {}", what);
    if (address.size() > max_address) return fmt::format("{} longer than {} octets", what, max_address);
    if (has_control(address)) return fmt::format("{} \"{}\" holds a control character", what, shown(address));
    return {};
}

// The length of the "<address>" that starts `text`: up to the first '>' outside a
// quoted string (RFC 5321 quoted local parts may hold '>' and spaces); 0 when none.
size_t bracketed_length(std::string_view text) {
    if (text.empty() || text.front() != '<') return 0;
    bool quoted = false;
    for (size_t i = 1; i < text.size(); ++i) {
        char c = text[i];
        if (quoted) {
            if (c == '\\') ++i;
            else if (c == '"') quoted = false;
        } else if (c == '"') {
            quoted = true;
        } else if (c == '>') {
            return i + 1;
        }
    }
    return 0;
}

// An address followed by more fields must end where the scan above says.
std::string delimited_address_problem(std::string_view what, std::string_view address) {
    if (auto problem = address_problem(what, address, false); !problem.empty()) return problem;
    std::string bracketed = "<" + std::string(address) + ">";
    if (bracketed_length(bracketed) != bracketed.size()) {
        return fmt::format("{} \"{}\" has an unclosed quote or a '>' outside quotes", what, shown(address));
    }
    return {};
}

// "<addr>" → addr by the outermost pair (version 1 lines, sender lines).
bool unbracket(std::string_view value, std::string& out) {
    if (value.size() < 2 || value.front() != '<' || value.back() != '>') return false;
    out = std::string(value.substr(1, value.size() - 2));
    return true;
}

bool parse_time(std::string_view text, std::time_t& out) {
    long long value = 0;
    if (!parse_int(text, value) || value < 0) return false;
    out = static_cast<std::time_t>(value);
    return true;
}

bool parse_indexes(std::string_view text, std::vector<size_t>& out) {
    while (!text.empty()) {
        auto comma = text.find(',');
        size_t index = 0;
        if (!parse_int(text.substr(0, comma), index)) return false;
        out.push_back(index);
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
        if (text.empty()) return false;
    }
    return !out.empty();
}

// RFC 3461 xtext: printable ASCII but '=', '+' only as "+HEX HEX"; RFC 6533's
// utf-8-addr-xtext adds UTF-8 (allowed for ORCPT).
bool is_xtext(std::string_view text, bool utf8) {
    if (text.empty()) return false;
    for (size_t i = 0; i < text.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c == '+') {
            if (i + 2 >= text.size()) return false;
            if (!is_hex(text[i + 1]) || !is_hex(text[i + 2])) return false;
            i += 2;
        } else if (c >= 0x80) {
            if (!utf8) return false;
        } else if (c < 0x21 || c > 0x7e || c == '=') {
            return false;
        }
    }
    return true;
}

std::string_view dsn_return_name(DsnReturn ret) { return ret == DsnReturn::full ? "full" : "hdrs"; }

std::string client_address_problem(std::string_view address) {
    if (address.empty()) return "client line without an address";
    if (address.size() > 100) return "client address longer than 100 octets";
    std::string ip(address.substr(0, address.find('%')));
    if (ip.size() < address.size()) {  // an IPv6 zone: fe80::1%eth0
        std::string_view zone = address.substr(ip.size() + 1);
        if (zone.empty() || !std::all_of(zone.begin(), zone.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
            })) {
            return fmt::format("bad zone in client address \"{}\"", shown(address));
        }
    }
    unsigned char buf[16];
    if (::inet_pton(AF_INET, ip.c_str(), buf) != 1 && ::inet_pton(AF_INET6, ip.c_str(), buf) != 1) {
        return fmt::format("client address \"{}\" is not an IP address", shown(address));
    }
    return {};
}

std::string client_name_problem(std::string_view name) {
    if (auto problem = word_problem("client name", name, max_name); !problem.empty()) return problem;
    bool host_chars = std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    });
    if (!host_chars) return fmt::format("client name \"{}\" is not a host name", shown(name));
    return {};
}

std::string recipient_dsn_problem(const RecipientDsn& dsn) {
    constexpr unsigned all = RecipientDsn::notify_never | RecipientDsn::notify_success | RecipientDsn::notify_failure |
                             RecipientDsn::notify_delay;
    if ((dsn.notify & ~all) != 0 ||
        ((dsn.notify & RecipientDsn::notify_never) != 0 && dsn.notify != RecipientDsn::notify_never)) {
        return fmt::format("bad NOTIFY bits {}", dsn.notify);
    }
    if (!dsn.orcpt.empty() && !is_valid_orcpt(dsn.orcpt)) {
        return fmt::format("bad ORCPT \"{}\"", shown(dsn.orcpt));
    }
    return {};
}

// Every envelope field but the addresses' syntax; "" when all would read back.
std::string envelope_problem(const Envelope& e) {
    if (auto p = address_problem("sender", e.sender, true); !p.empty()) return p;
    if (e.recipients.empty()) return "no recipient";
    if (e.recipient_dsn.size() > e.recipients.size()) return "more DSN facts than recipients";
    for (size_t i = 0; i < e.recipients.size(); ++i) {
        std::string what = fmt::format("recipient {}", i);
        if (auto p = delimited_address_problem(what, e.recipients[i]); !p.empty()) return p;
        if (auto p = recipient_dsn_problem(e.dsn(i)); !p.empty()) return what + ": " + p;
    }
    if (!e.envid.empty() && !is_valid_envid(e.envid)) return fmt::format("bad ENVID \"{}\"", shown(e.envid));
    if (!e.client_name.empty() || !e.client_address.empty()) {
        if (auto p = client_name_problem(e.client_name); !p.empty()) return p;
        if (auto p = client_address_problem(e.client_address); !p.empty()) return p;
    }
    if (!e.helo.empty()) {
        if (auto p = word_problem("HELO name", e.helo, max_name); !p.empty()) return p;
    }
    if (std::find(protocols.begin(), protocols.end(), e.protocol) == protocols.end()) {
        return fmt::format("unknown protocol \"{}\"", shown(e.protocol));
    }
    if (!e.auth.empty()) {
        if (auto p = word_problem("AUTH user", e.auth, max_name); !p.empty()) return p;
    }
    if (!e.tls_protocol.empty() || !e.tls_cipher.empty()) {
        if (auto p = word_problem("TLS protocol", e.tls_protocol, max_tls_word); !p.empty()) return p;
        if (auto p = word_problem("TLS cipher", e.tls_cipher, max_tls_word); !p.empty()) return p;
    }
    return {};
}

// ---- leaves


// PROVENANCE is one word: a space, a control character or '%' in a path is
// written %XX (an :include: file may have a space in its name).
std::string escape_provenance(std::string_view text) {
    std::string out;
    for (unsigned char c : text) {
        if (c <= 0x20 || c == 0x7f || c == '%') out += fmt::format("%{:02X}", c);
        else out += static_cast<char>(c);
    }
    return out;
}

bool unescape_provenance(std::string_view text, std::string& out) {
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size()) return false;
        if (!is_hex(text[i + 1]) || !is_hex(text[i + 2])) return false;
        out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
        i += 2;
    }
    return true;
}

// "5.1.1 text" / "4.2.0": what an error: target of aliases(5) holds.
bool is_error_target(std::string_view target) {
    std::string_view code = target.substr(0, target.find(' '));
    if (code.size() < 5 || (code[0] != '4' && code[0] != '5') || code[1] != '.') return false;
    std::string_view rest = code.substr(2);
    auto dot = rest.find('.');
    if (dot == std::string_view::npos) return false;
    auto digits = [](std::string_view d) { return !d.empty() && d.size() <= 3 && std::all_of(d.begin(), d.end(), is_digit); };
    return digits(rest.substr(0, dot)) && digits(rest.substr(dot + 1));
}

std::string leaf_fields_problem(const LeafRecord& leaf) {
    if (auto p = delimited_address_problem("leaf address", leaf.address); !p.empty()) return p;
    if (leaf.provenance.empty()) return "empty provenance";
    if (leaf.provenance.size() > max_provenance) return fmt::format("provenance longer than {} octets", max_provenance);
    if (leaf.provenance.find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) {
        return "provenance holds NUL, CR or LF";
    }
    if (!leaf.owner.empty()) {
        if (auto p = delimited_address_problem("owner", leaf.owner); !p.empty()) return p;
    }
    const std::string& t = leaf.target;
    if (t.empty()) return "empty target";
    if (t.size() > max_target) return fmt::format("target longer than {} octets", max_target);
    if (has_line_breaker(t)) return fmt::format("target \"{}\" holds a control character", shown(t));
    switch (leaf.kind) {
    case LeafKind::mailbox:
        if (auto p = word_problem("mailbox user", t, max_name); !p.empty()) return p;
        break;
    case LeafKind::file:
        if (t.front() != '/') return fmt::format("file target \"{}\" is not an absolute path", shown(t));
        break;
    case LeafKind::error:
        if (!is_error_target(t)) return fmt::format("error target \"{}\" does not start with a 4.x.y or 5.x.y code", shown(t));
        break;
    case LeafKind::command:
    case LeafKind::remote:
        break;
    }
    return {};
}

std::string format_leaf(const LeafRecord& leaf) {
    return fmt::format("leaf {} {} {} <{}> {} {} {}\n", leaf.index, leaf.recipient, leaf_kind_name(leaf.kind), leaf.address,
                       escape_provenance(leaf.provenance), leaf.owner.empty() ? "-" : "<" + leaf.owner + ">", leaf.target);
}

// `leaf LEAF RCPT KIND <ADDRESS> PROVENANCE OWNER TARGET`; the reason when it is not one.
core::Result<LeafRecord> parse_leaf_line(std::string_view rest) {
    LeafRecord leaf;
    if (!parse_int(next_word(rest), leaf.index)) return corrupt("bad leaf index");
    if (!parse_int(next_word(rest), leaf.recipient)) return corrupt("bad recipient index");
    std::string_view kind = next_word(rest);
    auto parsed_kind = leaf_kind_from_name(kind);
    if (!parsed_kind) return corrupt(fmt::format("unknown leaf kind \"{}\"", shown(kind)));
    leaf.kind = *parsed_kind;
    size_t length = bracketed_length(rest);
    if (length == 0 || rest.size() <= length || rest[length] != ' ') return corrupt("bad leaf address");
    leaf.address = std::string(rest.substr(1, length - 2));
    rest.remove_prefix(length + 1);
    std::string_view provenance = next_word(rest);
    if (provenance.empty() || !unescape_provenance(provenance, leaf.provenance)) return corrupt("bad provenance");
    if (rest.substr(0, 2) == "- ") {
        rest.remove_prefix(2);
    } else {
        length = bracketed_length(rest);
        if (length == 0 || rest.size() <= length || rest[length] != ' ') return corrupt("bad owner");
        leaf.owner = std::string(rest.substr(1, length - 2));
        if (leaf.owner.empty()) return corrupt("empty owner");
        rest.remove_prefix(length + 1);
    }
    leaf.target = std::string(rest);
    if (auto p = leaf_fields_problem(leaf); !p.empty()) return corrupt(p);
    return leaf;
}

std::optional<StateRecord> parse_state_line(std::string_view line) {
    StateRecord record;
    std::string_view rest = line;
    std::string_view kind = next_word(rest);
    auto take_status = [&] {
        record.code = std::string(next_word(rest));
        record.text = std::string(rest);
        return !record.code.empty();
    };
    if (kind == "delivered" || kind == "failed" || kind == "deferred") {
        record.kind = kind == "delivered" ? StateRecord::Kind::delivered
                      : kind == "failed"  ? StateRecord::Kind::failed
                                          : StateRecord::Kind::deferred;
        size_t index = 0;
        if (!parse_int(next_word(rest), index)) return std::nullopt;
        record.indexes.push_back(index);
        if (!parse_time(next_word(rest), record.time)) return std::nullopt;
        if (record.kind == StateRecord::Kind::deferred && !parse_time(next_word(rest), record.next_try)) {
            return std::nullopt;
        }
        if (!take_status()) return std::nullopt;
        return record;
    }
    if (kind == "notified") {
        record.kind = StateRecord::Kind::notified;
        if (!parse_indexes(next_word(rest), record.indexes)) return std::nullopt;
        if (!parse_time(next_word(rest), record.time)) return std::nullopt;
        record.notice_id = std::string(next_word(rest));
        return record.notice_id.empty() ? std::nullopt : std::optional(record);
    }
    if (kind == "warned") {
        record.kind = StateRecord::Kind::warned;
        if (!parse_time(next_word(rest), record.time)) return std::nullopt;
        record.notice_id = std::string(next_word(rest));
        return record.notice_id.empty() ? std::nullopt : std::optional(record);
    }
    if (kind == "requeued") {
        record.kind = StateRecord::Kind::requeued;
        if (!parse_time(next_word(rest), record.time) || !rest.empty()) return std::nullopt;
        return record;
    }
    return std::nullopt;
}

std::string state_record_problem(const EntryState& state, const StateRecord& record) {
    if (record.kind == StateRecord::Kind::warned || record.kind == StateRecord::Kind::requeued) return {};
    if (record.indexes.empty()) return "state record without an index";
    for (auto index : record.indexes) {
        if (index < state.recipients.size()) {
            if (state.expanded(index)) {
                return fmt::format("state record for recipient {}, which is expanded: its records name its leaves", index);
            }
        } else if (!state.leaf(index)) {
            return fmt::format("state record for recipient or leaf {}, which does not exist", index);
        }
    }
    return {};
}

std::string expansion_problem(const EntryState& state, const ExpansionRecord& expansion) {
    if (expansion.recipient >= state.recipients.size()) {
        return fmt::format("expansion of recipient {}, which does not exist", expansion.recipient);
    }
    size_t next = state.next_leaf_index();
    for (const auto& leaf : expansion.leaves) {
        if (leaf.index != next) return fmt::format("leaf {} where leaf {} comes next", leaf.index, next);
        if (leaf.recipient != expansion.recipient) {
            return fmt::format("leaf {} of recipient {} in the expansion of recipient {}", leaf.index, leaf.recipient,
                               expansion.recipient);
        }
        if (auto p = leaf_fields_problem(leaf); !p.empty()) return fmt::format("leaf {}: {}", leaf.index, p);
        ++next;
    }
    return {};
}

RecipientState* mutable_target(EntryState& state, size_t index) {
    if (index < state.recipients.size()) return &state.recipients[index];
    size_t k = index - state.recipients.size();
    return k < state.leaves.size() ? &state.leaves[k].state : nullptr;
}

// The envelope lines in the order they must come; recipient lines may repeat.
enum class EnvelopeKey { arrival, uid, sender, ret, envid, client, helo, protocol, auth, tls, recipient, end, unknown };

EnvelopeKey envelope_key(std::string_view key) {
    static constexpr std::array<std::string_view, 12> names = {"arrival", "uid",      "sender", "ret",  "envid",     "client",
                                                               "helo",    "protocol", "auth",   "tls",  "recipient", "end"};
    for (size_t i = 0; i < names.size(); ++i) {
        if (key == names[i]) return static_cast<EnvelopeKey>(i);
    }
    return EnvelopeKey::unknown;
}

bool version_2_only(EnvelopeKey key) { return key >= EnvelopeKey::ret && key <= EnvelopeKey::tls; }

// `recipient <addr> [notify=...] [orcpt=...]`
std::string parse_recipient_line(std::string_view value, int version, Envelope& envelope) {
    std::string address;
    RecipientDsn dsn;
    size_t length = bracketed_length(value);
    if (version == 1 || length == value.size()) {
        if (!unbracket(value, address)) {
            bool has_parameters = length > 0 && length < value.size() && value[length] == ' ';
            return has_parameters ? "recipient parameters are version 2, in a version 1 queue entry" : "bad recipient";
        }
    } else {
        if (length == 0 || value[length] != ' ') return "bad recipient";
        address = std::string(value.substr(1, length - 2));
        std::string_view rest = value.substr(length + 1);
        std::string_view word = next_word(rest);
        if (word.substr(0, 7) == "notify=") {
            auto notify = parse_dsn_notify(word.substr(7));
            if (!notify) return fmt::format("bad NOTIFY \"{}\" (NEVER, or SUCCESS, FAILURE, DELAY)", shown(word.substr(7)));
            dsn.notify = *notify;
            word = next_word(rest);
        }
        if (word.substr(0, 6) == "orcpt=") {
            dsn.orcpt = std::string(word.substr(6));
            if (!is_valid_orcpt(dsn.orcpt)) return fmt::format("bad ORCPT \"{}\"", shown(dsn.orcpt));
            word = next_word(rest);
        }
        if (!word.empty() || !rest.empty()) return fmt::format("unknown recipient parameter \"{}\"", shown(word));
    }
    if (auto p = address_problem("recipient", address, false); !p.empty()) return p;
    envelope.recipients.push_back(std::move(address));
    envelope.recipient_dsn.push_back(std::move(dsn));
    return {};
}

// One envelope line (not "end"); the reason when it does not parse.
std::string parse_envelope_line(EnvelopeKey key, std::string_view value, int version, Envelope& envelope) {
    switch (key) {
    case EnvelopeKey::arrival: {
        auto dot = value.find('.');
        uint64_t secs = 0, micros = 0;
        if (dot == std::string_view::npos || !parse_int(value.substr(0, dot), secs) ||
            !parse_int(value.substr(dot + 1), micros) || micros >= 1'000'000 || secs > UINT64_MAX / 1'000'000 - 1) {
            return "bad arrival time";
        }
        envelope.arrival_micros = secs * 1'000'000 + micros;
        return {};
    }
    case EnvelopeKey::uid:
        return parse_int(value, envelope.submitter_uid) ? "" : "bad uid";
    case EnvelopeKey::sender:
        if (!unbracket(value, envelope.sender)) return "bad sender";
        return address_problem("sender", envelope.sender, true);
    case EnvelopeKey::ret:
        if (value == "full") envelope.ret = DsnReturn::full;
        else if (value == "hdrs") envelope.ret = DsnReturn::hdrs;
        else return fmt::format("bad RET \"{}\" (full or hdrs)", shown(value));
        return {};
    case EnvelopeKey::envid:
        if (!is_valid_envid(value)) return fmt::format("bad ENVID \"{}\"", shown(value));
        envelope.envid = std::string(value);
        return {};
    case EnvelopeKey::client: {
        std::string_view name = next_word(value);
        if (auto p = client_name_problem(name); !p.empty()) return p;
        if (auto p = client_address_problem(value); !p.empty()) return p;
        envelope.client_name = std::string(name);
        envelope.client_address = std::string(value);
        return {};
    }
    case EnvelopeKey::helo:
        if (auto p = word_problem("HELO name", value, max_name); !p.empty()) return p;
        envelope.helo = std::string(value);
        return {};
    case EnvelopeKey::protocol:
        if (value.empty() || std::find(protocols.begin(), protocols.end(), value) == protocols.end()) {
            return fmt::format("unknown protocol \"{}\"", shown(value));
        }
        envelope.protocol = std::string(value);
        return {};
    case EnvelopeKey::auth:
        if (auto p = word_problem("AUTH user", value, max_name); !p.empty()) return p;
        envelope.auth = std::string(value);
        return {};
    case EnvelopeKey::tls: {
        std::string_view protocol = next_word(value);
        if (auto p = word_problem("TLS protocol", protocol, max_tls_word); !p.empty()) return p;
        if (auto p = word_problem("TLS cipher", value, max_tls_word); !p.empty()) return p;
        envelope.tls_protocol = std::string(protocol);
        envelope.tls_cipher = std::string(value);
        return {};
    }
    case EnvelopeKey::recipient:
        return parse_recipient_line(value, version, envelope);
    case EnvelopeKey::end:
    case EnvelopeKey::unknown:
        break;
    }
    return "unknown envelope record";
}

}  // namespace

// ---- envelope

const RecipientDsn& Envelope::dsn(size_t i) const {
    static const RecipientDsn none;
    return i < recipient_dsn.size() ? recipient_dsn[i] : none;
}

std::optional<unsigned> parse_dsn_notify(std::string_view value) {
    unsigned bits = 0;
    while (true) {
        auto comma = value.find(',');
        std::string word(value.substr(0, comma));
        for (char& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        unsigned bit = word == "NEVER"     ? RecipientDsn::notify_never
                       : word == "SUCCESS" ? RecipientDsn::notify_success
                       : word == "FAILURE" ? RecipientDsn::notify_failure
                       : word == "DELAY"   ? RecipientDsn::notify_delay
                                           : 0;
        if (bit == 0 || (bits & bit) != 0) return std::nullopt;  // unknown or repeated word
        bits |= bit;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    // NEVER stands alone (RFC 3461 4.1).
    if ((bits & RecipientDsn::notify_never) != 0 && bits != RecipientDsn::notify_never) return std::nullopt;
    return bits;
}

std::string format_dsn_notify(unsigned notify) {
    if (notify == RecipientDsn::notify_never) return "NEVER";
    std::string out;
    for (auto [bit, name] : {std::pair{RecipientDsn::notify_success, "SUCCESS"},
                             std::pair{RecipientDsn::notify_failure, "FAILURE"},
                             std::pair{RecipientDsn::notify_delay, "DELAY"}}) {
        if ((notify & bit) == 0) continue;
        if (!out.empty()) out += ',';
        out += name;
    }
    return out;
}

bool is_valid_orcpt(std::string_view value) {
    if (value.size() > max_orcpt) return false;
    auto semi = value.find(';');
    if (semi == 0 || semi == std::string_view::npos) return false;
    std::string_view type = value.substr(0, semi);
    bool atom = std::all_of(type.begin(), type.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
    });
    return atom && is_xtext(value.substr(semi + 1), true);
}

bool is_valid_envid(std::string_view value) { return value.size() <= max_envid && is_xtext(value, false); }

std::string format_queue_header(uint64_t message_size, int version) {
    return fmt::format("{}{}{}{:020}\n", header_start, version, header_middle, message_size);
}

core::Result<QueueHeader> parse_queue_first_line(std::string_view header) {
    if (header.size() < queue_header_size) return corrupt("queue entry shorter than its first line");
    if (header.substr(0, header_start.size()) != header_start) return corrupt("not a mailroom queue entry");
    char digit = header[queue_version_offset];
    bool known = digit >= '0' + queue_oldest_format_version && digit <= '0' + queue_format_version;
    if (!known || header.substr(queue_version_offset + 1, header_middle.size()) != header_middle) {
        return corrupt(fmt::format("unknown queue entry version \"{}\"", shown(header.substr(0, header.find('\n')))));
    }
    if (header[queue_header_size - 1] != '\n') return corrupt("not a mailroom queue entry");
    QueueHeader parsed;
    parsed.version = digit - '0';
    size_t digits_at = queue_version_offset + 1 + header_middle.size();
    if (!std::all_of(header.begin() + digits_at, header.begin() + queue_header_size - 1, is_digit) ||
        !parse_int(header.substr(digits_at, 20), parsed.message_size)) {
        return corrupt("bad message size in queue entry");
    }
    return parsed;
}

core::Result<uint64_t> parse_queue_header(std::string_view header) {
    auto parsed = parse_queue_first_line(header);
    if (!parsed) return core::unexpected(parsed.error());
    return parsed->message_size;
}

std::string format_envelope(const Envelope& envelope) {
    std::string out = fmt::format("arrival {}.{:06}\nuid {}\nsender <{}>\n", envelope.arrival_micros / 1'000'000,
                                  envelope.arrival_micros % 1'000'000, envelope.submitter_uid,
                                  clean_text(envelope.sender));
    if (envelope.ret != DsnReturn::unspecified) out += fmt::format("ret {}\n", dsn_return_name(envelope.ret));
    if (!envelope.envid.empty()) out += fmt::format("envid {}\n", envelope.envid);
    if (!envelope.client_name.empty() || !envelope.client_address.empty()) {
        out += fmt::format("client {} {}\n", envelope.client_name, envelope.client_address);
    }
    if (!envelope.helo.empty()) out += fmt::format("helo {}\n", envelope.helo);
    if (!envelope.protocol.empty()) out += fmt::format("protocol {}\n", envelope.protocol);
    if (!envelope.auth.empty()) out += fmt::format("auth {}\n", envelope.auth);
    if (!envelope.tls_protocol.empty() || !envelope.tls_cipher.empty()) {
        out += fmt::format("tls {} {}\n", envelope.tls_protocol, envelope.tls_cipher);
    }
    for (size_t i = 0; i < envelope.recipients.size(); ++i) {
        out += fmt::format("recipient <{}>", clean_text(envelope.recipients[i]));
        const RecipientDsn& dsn = envelope.dsn(i);
        if (dsn.notify != 0) out += " notify=" + format_dsn_notify(dsn.notify);
        if (!dsn.orcpt.empty()) out += " orcpt=" + dsn.orcpt;
        out += '\n';
    }
    out += "end\n";
    return out;
}

core::Result<void> check_envelope(const Envelope& envelope) {
    if (auto problem = envelope_problem(envelope); !problem.empty()) {
        return refused("queue entry envelope: " + problem);
    }
    return {};
}

// ---- state log

std::string format_state_record(const StateRecord& record) {
    auto first = record.indexes.empty() ? size_t{0} : record.indexes.front();
    switch (record.kind) {
    case StateRecord::Kind::delivered:
        return fmt::format("delivered {} {} {} {}\n", first, record.time, record.code, clean_text(record.text));
    case StateRecord::Kind::failed:
        return fmt::format("failed {} {} {} {}\n", first, record.time, record.code, clean_text(record.text));
    case StateRecord::Kind::deferred:
        return fmt::format("deferred {} {} {} {} {}\n", first, record.time, record.next_try, record.code,
                           clean_text(record.text));
    case StateRecord::Kind::notified:
        return fmt::format("notified {} {} {}\n", fmt::join(record.indexes, ","), record.time, record.notice_id);
    case StateRecord::Kind::warned:
        return fmt::format("warned {} {}\n", record.time, record.notice_id);
    case StateRecord::Kind::requeued:
        return fmt::format("requeued {}\n", record.time);
    }
    return {};
}

void apply_state_record(EntryState& state, const StateRecord& record) {
    switch (record.kind) {
    case StateRecord::Kind::delivered:
    case StateRecord::Kind::failed:
    case StateRecord::Kind::deferred: {
        if (record.indexes.empty()) return;
        auto* r = mutable_target(state, record.indexes.front());
        if (!r) return;
        r->phase = record.kind == StateRecord::Kind::delivered ? RecipientPhase::delivered
                   : record.kind == StateRecord::Kind::failed  ? RecipientPhase::failed
                                                               : RecipientPhase::deferred;
        r->attempts += 1;
        r->last_try = record.time;
        r->next_try = record.next_try;
        r->code = record.code;
        r->text = record.text;
        break;
    }
    case StateRecord::Kind::notified:
        for (auto index : record.indexes) {
            if (auto* r = mutable_target(state, index)) r->notified = true;
        }
        break;
    case StateRecord::Kind::warned:
        state.warned = true;
        break;
    case StateRecord::Kind::requeued:
        state.requeued = record.time;
        for (auto& r : state.recipients) {
            if (r.phase == RecipientPhase::deferred) r.next_try = record.time;
        }
        for (auto& l : state.leaves) {
            if (l.state.phase == RecipientPhase::deferred) l.state.next_try = record.time;
        }
        // Expanded again at the next run (by file order, not by time: a requeue in the
        // same second as the expansion counts).
        for (auto& x : state.expansions) {
            if (x.expanded) x.requeued = true;
        }
        break;
    }
}

core::Result<void> check_state_record(const EntryState& state, const StateRecord& record) {
    if (auto problem = state_record_problem(state, record); !problem.empty()) return refused(problem);
    return {};
}

// ---- expansions


std::string format_expansion(const ExpansionRecord& expansion) {
    std::string out;
    for (const auto& leaf : expansion.leaves) out += format_leaf(leaf);
    out += fmt::format("expanded {} {} {}\n", expansion.recipient, expansion.time, expansion.leaves.size());
    return out;
}

core::Result<void> check_expansion(const EntryState& state, const ExpansionRecord& expansion) {
    if (auto problem = expansion_problem(state, expansion); !problem.empty()) return refused(problem);
    return {};
}

void apply_expansion(EntryState& state, const ExpansionRecord& expansion) {
    if (expansion.recipient >= state.recipients.size()) return;
    if (state.expansions.size() < state.recipients.size()) state.expansions.resize(state.recipients.size());
    RecipientExpansion& x = state.expansions[expansion.recipient];
    // Re-expansion (mailctl requeue): what is done stays (a delivered leaf is never
    // tried again); what is not is replaced by the new group.
    std::vector<size_t> current;
    for (size_t index : x.current) {
        size_t k = index - state.recipients.size();
        if (k >= state.leaves.size()) continue;
        if (state.leaves[k].state.done()) current.push_back(index);
        else state.leaves[k].superseded = true;
    }
    for (const auto& leaf : expansion.leaves) {
        current.push_back(state.recipients.size() + state.leaves.size());
        state.leaves.push_back(LeafState{leaf, {}, false});
        state.leaves.back().leaf.index = current.back();
    }
    x.current = std::move(current);
    x.expanded = true;
    x.requeued = false;
    x.time = expansion.time;
    x.expansions += 1;
}

// ---- folded state

bool EntryState::expanded(size_t recipient) const {
    return recipient < expansions.size() && expansions[recipient].expanded;
}

const LeafState* EntryState::leaf(size_t index) const {
    if (index < recipients.size()) return nullptr;
    size_t k = index - recipients.size();
    return k < leaves.size() ? &leaves[k] : nullptr;
}

const RecipientState* EntryState::target_state(size_t index) const {
    if (index < recipients.size()) return &recipients[index];
    const LeafState* l = leaf(index);
    return l ? &l->state : nullptr;
}

std::vector<const LeafState*> EntryState::current_leaves(size_t recipient) const {
    std::vector<const LeafState*> out;
    if (!expanded(recipient)) return out;
    for (size_t index : expansions[recipient].current) {
        if (const LeafState* l = leaf(index)) out.push_back(l);
    }
    return out;
}

bool EntryState::recipient_done(size_t recipient) const {
    if (!expanded(recipient)) return recipient < recipients.size() && recipients[recipient].done();
    auto current = current_leaves(recipient);
    return std::all_of(current.begin(), current.end(), [](const LeafState* l) { return l->state.done(); });
}

bool EntryState::all_done() const {
    for (size_t i = 0; i < recipients.size(); ++i) {
        if (!recipient_done(i)) return false;
    }
    return true;
}

std::time_t EntryState::next_try() const {
    std::time_t earliest = 0;
    auto consider = [&](const RecipientState& r) {
        if (r.phase != RecipientPhase::deferred) return;
        if (earliest == 0 || r.next_try < earliest) earliest = r.next_try;
    };
    for (size_t i = 0; i < recipients.size(); ++i) {
        if (!expanded(i)) {
            consider(recipients[i]);
            continue;
        }
        for (const LeafState* l : current_leaves(i)) consider(l->state);
    }
    return earliest;
}

// ---- reading a tail

core::Result<ParsedTail> parse_entry_tail(std::string_view tail, int version) {
    if (version < queue_oldest_format_version || version > queue_format_version) {
        return corrupt(fmt::format("unknown queue entry version {}", version));
    }
    ParsedTail parsed;
    parsed.version = version;
    bool seen_end = false;
    int last_key = -1;
    unsigned seen_keys = 0;
    size_t pos = 0;
    while (pos < tail.size() && !seen_end) {
        auto nl = tail.find('\n', pos);
        if (nl == std::string_view::npos) return corrupt("queue entry envelope is cut short");
        std::string_view line = tail.substr(pos, nl - pos);
        pos = nl + 1;
        std::string_view value = line;
        std::string_view word = next_word(value);
        EnvelopeKey key = envelope_key(word);
        if (key == EnvelopeKey::unknown || (key == EnvelopeKey::end && !value.empty())) {
            return corrupt(fmt::format("unknown envelope record \"{}\" in queue entry", shown(word)));
        }
        if (version == 1 && version_2_only(key)) {
            return corrupt(fmt::format("version 2 envelope record \"{}\" in a version 1 queue entry", word));
        }
        int rank = static_cast<int>(key);
        if (rank < last_key || (rank == last_key && key != EnvelopeKey::recipient)) {
            return corrupt(fmt::format("envelope record \"{}\" repeated or out of order in queue entry", word));
        }
        last_key = rank;
        seen_keys |= 1u << rank;
        if (key == EnvelopeKey::end) {
            seen_end = true;
            break;
        }
        if (auto problem = parse_envelope_line(key, value, version, parsed.envelope); !problem.empty()) {
            return corrupt(fmt::format("bad {} line in queue entry: {}", word, problem));
        }
    }
    if (!seen_end) return corrupt("queue entry envelope is cut short");
    const unsigned required = 1u << static_cast<int>(EnvelopeKey::arrival) | 1u << static_cast<int>(EnvelopeKey::uid) |
                              1u << static_cast<int>(EnvelopeKey::sender) | 1u << static_cast<int>(EnvelopeKey::recipient);
    if ((seen_keys & required) != required) {
        return corrupt("queue entry envelope lacks arrival, uid, sender or recipients");
    }
    const size_t recipients = parsed.envelope.recipients.size();
    parsed.state.recipients.resize(recipients);
    parsed.state.expansions.resize(recipients);
    parsed.valid_length = pos;

    // The state log. LeafRecord records wait for the "expanded" record that closes their
    // group: without it (a crash in mid-append) they are ignored like a torn line.
    std::vector<LeafRecord> open_group;
    while (pos < tail.size()) {
        auto nl = tail.find('\n', pos);
        if (nl == std::string_view::npos) break;  // torn by a crash in mid-append: ignored
        std::string_view line = tail.substr(pos, nl - pos);
        auto where = [&](std::string_view what) {
            return fmt::format("bad {} record at byte {} of the queue entry's tail: ", shown(what), pos);
        };
        std::string_view rest = line;
        std::string_view kind = next_word(rest);
        if (kind == "leaf" || kind == "expanded") {
            if (version == 1) return corrupt(where(kind) + "a version 2 record in a version 1 queue entry");
        } else if (!open_group.empty()) {
            return corrupt(where(kind) + "leaf records not closed by their expanded record");
        }
        if (kind == "leaf") {
            auto leaf = parse_leaf_line(rest);
            if (!leaf) return corrupt(where(kind) + leaf.error().context);
            size_t expected = parsed.state.next_leaf_index() + open_group.size();
            if (leaf->index != expected) {
                return corrupt(where(kind) + fmt::format("leaf {} where leaf {} comes next", leaf->index, expected));
            }
            if (leaf->recipient >= recipients) {
                return corrupt(where(kind) + fmt::format("leaf of recipient {}, which does not exist", leaf->recipient));
            }
            open_group.push_back(std::move(*leaf));
        } else if (kind == "expanded") {
            ExpansionRecord expansion;
            size_t count = 0;
            if (!parse_int(next_word(rest), expansion.recipient) || !parse_time(next_word(rest), expansion.time) ||
                !parse_int(next_word(rest), count) || !rest.empty()) {
                return corrupt(where(kind) + "not \"expanded RCPT TIME COUNT\"");
            }
            if (expansion.recipient >= recipients) {
                return corrupt(where(kind) + fmt::format("recipient {} does not exist", expansion.recipient));
            }
            if (count != open_group.size()) {
                return corrupt(where(kind) + fmt::format("count {} but {} leaf records before it", count, open_group.size()));
            }
            for (const auto& leaf : open_group) {
                if (leaf.recipient != expansion.recipient) {
                    return corrupt(where(kind) + fmt::format("leaf {} of recipient {} in the group of recipient {}",
                                                             leaf.index, leaf.recipient, expansion.recipient));
                }
            }
            expansion.leaves = std::move(open_group);
            open_group.clear();
            apply_expansion(parsed.state, expansion);
            parsed.valid_length = nl + 1;
        } else {
            auto record = parse_state_line(line);
            if (!record) return corrupt(fmt::format("bad state record at byte {} of the queue entry's tail", pos));
            if (auto problem = state_record_problem(parsed.state, *record); !problem.empty()) {
                return corrupt(where(kind) + problem);
            }
            apply_state_record(parsed.state, *record);
            parsed.valid_length = nl + 1;
        }
        pos = nl + 1;
    }
    return parsed;
}

}  // namespace mailroom::mail
