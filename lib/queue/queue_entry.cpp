#include "queue/queue_entry.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace mailroom::mail {

namespace {

constexpr std::string_view header_prefix = "mailroom-queue 1 message ";

std::string clean_text(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c == '\n' || c == '\r' || c == '\0') c = ' ';
    }
    return out;
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

// "<addr>" → addr; the address itself may hold '<' or '>' inside quotes, so
// only the outermost pair counts.
bool unbracket(std::string_view value, std::string& out) {
    if (value.size() < 2 || value.front() != '<' || value.back() != '>') return false;
    // Addresses never hold control characters (Address refuses them at the door).
    for (unsigned char c : value) {
        if (c < 0x20 || c == 0x7f) return false;
    }
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

}  // namespace

std::string format_queue_header(uint64_t message_size) {
    return fmt::format("{}{:020}\n", header_prefix, message_size);
}

core::Result<uint64_t> parse_queue_header(std::string_view header) {
    if (header.size() < queue_header_size) return corrupt("queue entry shorter than its first line");
    if (header.substr(0, 15) == "mailroom-queue " && header.substr(0, header_prefix.size()) != header_prefix) {
        return corrupt(fmt::format("unknown queue entry version \"{}\"",
                                   clean_text(header.substr(0, header.find('\n')))));
    }
    if (header.substr(0, header_prefix.size()) != header_prefix || header[queue_header_size - 1] != '\n') {
        return corrupt("not a mailroom queue entry");
    }
    uint64_t size = 0;
    if (!parse_int(header.substr(header_prefix.size(), 20), size)) return corrupt("bad message size in queue entry");
    return size;
}

std::string format_envelope(const Envelope& envelope) {
    std::string out = fmt::format("arrival {}.{:06}\nuid {}\nsender <{}>\n", envelope.arrival_micros / 1'000'000,
                                  envelope.arrival_micros % 1'000'000, envelope.submitter_uid,
                                  clean_text(envelope.sender));
    for (const auto& recipient : envelope.recipients) out += fmt::format("recipient <{}>\n", clean_text(recipient));
    out += "end\n";
    return out;
}

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
    auto at = [&](size_t index) -> RecipientState* {
        return index < state.recipients.size() ? &state.recipients[index] : nullptr;
    };
    switch (record.kind) {
    case StateRecord::Kind::delivered:
    case StateRecord::Kind::failed:
    case StateRecord::Kind::deferred: {
        auto* r = at(record.indexes.front());
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
            if (auto* r = at(index)) r->notified = true;
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
        break;
    }
}

bool EntryState::all_done() const {
    return std::all_of(recipients.begin(), recipients.end(), [](const RecipientState& r) { return r.done(); });
}

std::time_t EntryState::next_try() const {
    std::time_t earliest = 0;
    for (const auto& r : recipients) {
        if (r.phase != RecipientPhase::deferred) continue;
        if (earliest == 0 || r.next_try < earliest) earliest = r.next_try;
    }
    return earliest;
}

core::Result<ParsedTail> parse_entry_tail(std::string_view tail) {
    ParsedTail parsed;
    bool seen_arrival = false, seen_uid = false, seen_sender = false, seen_end = false;
    size_t pos = 0;
    while (pos < tail.size() && !seen_end) {
        auto nl = tail.find('\n', pos);
        if (nl == std::string_view::npos) return corrupt("queue entry envelope is cut short");
        std::string_view line = tail.substr(pos, nl - pos);
        pos = nl + 1;
        std::string_view value = line;
        std::string_view key = next_word(value);
        if (key == "arrival") {
            auto dot = value.find('.');
            uint64_t secs = 0, micros = 0;
            if (dot == std::string_view::npos || !parse_int(value.substr(0, dot), secs) ||
                !parse_int(value.substr(dot + 1), micros) || micros >= 1'000'000) {
                return corrupt("bad arrival time in queue entry");
            }
            parsed.envelope.arrival_micros = secs * 1'000'000 + micros;
            seen_arrival = true;
        } else if (key == "uid") {
            if (!parse_int(value, parsed.envelope.submitter_uid)) return corrupt("bad uid in queue entry");
            seen_uid = true;
        } else if (key == "sender") {
            if (seen_sender || !unbracket(value, parsed.envelope.sender)) return corrupt("bad sender in queue entry");
            seen_sender = true;
        } else if (key == "recipient") {
            std::string address;
            if (!unbracket(value, address) || address.empty()) return corrupt("bad recipient in queue entry");
            parsed.envelope.recipients.push_back(std::move(address));
        } else if (key == "end" && value.empty()) {
            seen_end = true;
        } else {
            return corrupt(fmt::format("unknown envelope record \"{}\" in queue entry", clean_text(key.substr(0, 40))));
        }
    }
    if (!seen_end) return corrupt("queue entry envelope is cut short");
    if (!seen_arrival || !seen_uid || !seen_sender || parsed.envelope.recipients.empty()) {
        return corrupt("queue entry envelope lacks arrival, uid, sender or recipients");
    }
    parsed.state.recipients.resize(parsed.envelope.recipients.size());
    parsed.valid_length = pos;
    while (pos < tail.size()) {
        auto nl = tail.find('\n', pos);
        if (nl == std::string_view::npos) break;  // torn by a crash in mid-append: ignored
        auto record = parse_state_line(tail.substr(pos, nl - pos));
        if (!record) return corrupt(fmt::format("bad state record at byte {} of the queue entry's tail", pos));
        for (auto index : record->indexes) {
            if (index >= parsed.envelope.recipients.size()) return corrupt("state record for a recipient that does not exist");
        }
        apply_state_record(parsed.state, *record);
        pos = nl + 1;
        parsed.valid_length = pos;
    }
    return parsed;
}

}  // namespace mailroom::mail
