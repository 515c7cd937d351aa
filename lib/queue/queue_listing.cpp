#include "queue/queue_listing.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <thread>
#include <cerrno>
#include <cstdio>

#include "core/utf8.hpp"

namespace mailroom::mail {

namespace {

constexpr std::string_view heading = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n";
// Recipients start in column 43, under "-Sender/Recipient-" (11 + 1 + 8 + 1 + 20 + 1).
constexpr size_t recipient_indent = 42;
// Postfix's: a reason's closing parenthesis lands in column 78.
constexpr int reason_column = 76;

// Appends text with control bytes, C1 controls and invalid UTF-8 as '?'.
void append_printable(std::string& out, std::string_view text) {
    for (size_t pos = 0; pos < text.size();) {
        // Plain printable ASCII, nearly every address and reason, is copied in one go.
        size_t plain = pos;
        while (plain < text.size() && text[plain] >= 0x20 && text[plain] < 0x7F) ++plain;
        out.append(text.substr(pos, plain - pos));
        if (plain == text.size()) break;
        pos = plain;
        char32_t code_point = 0;
        size_t length = core::utf8_sequence(text, pos, code_point);
        bool control = code_point < 0x20 || (code_point >= 0x7F && code_point <= 0x9F);
        if (length == 0 || control) {
            out += '?';
            pos += length == 0 ? 1 : length;
            continue;
        }
        out.append(text.substr(pos, length));
        pos += length;
    }
}

// Characters (code points), which is what a terminal advances by for the text
// mailq prints; Postfix counts bytes, which differs only for 8-bit reasons.
size_t display_length(std::string_view printable) {
    return static_cast<size_t>(std::count_if(printable.begin(), printable.end(),
                                             [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

const char* phase_name(RecipientPhase phase) {
    switch (phase) {
    case RecipientPhase::pending: return "pending";
    case RecipientPhase::delivered: return "delivered";
    case RecipientPhase::deferred: return "deferred";
    case RecipientPhase::failed: return "failed";
    }
    return "pending";
}

// The reason shown for a recipient that is not done: its last failure text.
std::string_view reason_of(const RecipientState& state) {
    bool has_reason = state.phase == RecipientPhase::deferred || state.phase == RecipientPhase::failed;
    return has_reason ? std::string_view(state.text) : std::string_view();
}

void append_padded(std::string& out, std::string_view text, size_t width, bool right_aligned) {
    size_t padding = text.size() < width ? width - text.size() : 0;
    if (right_aligned) out.append(padding, ' ');
    out += text;
    if (!right_aligned) out.append(padding, ' ');
}

std::string json_time(std::time_t when) { return when > 0 ? std::to_string(when) : "null"; }

// What mailq lists for an envelope recipient: the recipient itself until it is
// expanded, then each of its current leaves (a list member, a command...), so a
// deferred member shows with its own reason.
struct Listed {
    const std::string& address;
    const std::string* original;  // the envelope recipient a leaf came from, else null
    const RecipientState& state;
};

std::vector<Listed> listed_targets(const EntrySnapshot& entry) {
    std::vector<Listed> listed;
    const auto& envelope = entry.envelope;
    for (size_t i = 0; i < envelope.recipients.size(); ++i) {
        if (!entry.state.expanded(i)) {
            listed.push_back({envelope.recipients[i], nullptr, entry.state.recipients[i]});
            continue;
        }
        for (const LeafState* leaf : entry.state.current_leaves(i)) {
            listed.push_back({leaf->leaf.address, &envelope.recipients[i], leaf->state});
        }
    }
    return listed;
}

void append_text_entry(const EntrySnapshot& entry, std::string& out) {
    const auto& envelope = entry.envelope;
    // "%-11s %8ld %20.20s %s", by hand: fmt's padding decodes UTF-8 to measure the
    // width, which showed in the profile of a 50,000-entry listing. asctime() is
    // "Sat Nov 21 20:23:34 2026\n": the %20.20s keeps the space before the year.
    append_padded(out, mailq_id_with_mark(entry), 11, false);
    out += ' ';
    append_padded(out, std::to_string(entry.message_size), 8, true);
    out += ' ';
    out += mailq_arrival(envelope.arrival());
    out += "  ";
    if (envelope.sender.empty()) out += "MAILER-DAEMON";
    else append_printable(out, envelope.sender);
    out += '\n';
    std::string saved_reason;  // Postfix starts with "": no reason line before untried recipients
    for (const Listed& target : listed_targets(entry)) {
        const RecipientState& state = target.state;
        if (state.done()) continue;
        std::string reason = printable_text(reason_of(state));
        if (reason != saved_reason) {
            saved_reason = reason;
            std::string shown = reason.empty() ? "reason unavailable" : reason;
            int padding = std::max(0, reason_column - static_cast<int>(display_length(shown)));
            out.append(static_cast<size_t>(padding), ' ');
            out += "(" + shown + ")\n";
        }
        out.append(recipient_indent, ' ');
        append_printable(out, target.address);
        out += '\n';
    }
}

void append_json_entry(const EntrySnapshot& entry, std::string& out) {
    const auto& envelope = entry.envelope;
    std::vector<Listed> listed = listed_targets(entry);
    int attempts = 0;
    for (const Listed& target : listed) attempts = std::max(attempts, target.state.attempts);
    bool held = entry.folder == QueueFolder::hold;
    // A held entry is not scheduled; an untried one is due now: both have no next try.
    std::time_t next_try = held ? 0 : entry.state.next_try();
    out += fmt::format(
        "{{\"queue_name\": \"{}\", \"queue_id\": {}, \"arrival_time\": {}, \"message_size\": {}, "
        "\"forced_expire\": false, \"sender\": {}, \"held\": {}, \"attempts\": {}, \"next_try\": {}, \"recipients\": [",
        json_queue_name(entry), json_quote(entry.id), envelope.arrival(), entry.message_size,
        json_quote(envelope.sender), held, attempts, json_time(next_try));
    for (size_t i = 0; i < listed.size(); ++i) {
        const RecipientState& state = listed[i].state;
        std::string_view reason = reason_of(state);
        if (i > 0) out += ", ";
        out += fmt::format("{{\"address\": {}, \"status\": \"{}\"", json_quote(listed[i].address),
                           phase_name(state.phase));
        // A leaf of an alias or .forward: the envelope recipient it came from.
        if (listed[i].original) out += fmt::format(", \"orig_address\": {}", json_quote(*listed[i].original));
        // postqueue -j's name, present only for a deferred recipient as there.
        if (state.phase == RecipientPhase::deferred) out += fmt::format(", \"delay_reason\": {}", json_quote(reason));
        out += fmt::format(", \"reason\": {}, \"attempts\": {}, \"next_try\": {}}}",
                           reason.empty() ? "null" : json_quote(reason), state.attempts,
                           json_time(state.phase == RecipientPhase::deferred ? state.next_try : 0));
    }
    out += "]}\n";
}

}  // namespace

std::string mailq_arrival(std::time_t when) {
    // Spelled here, not by strftime: asctime's names never follow the locale.
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm{};
    ::localtime_r(&when, &tm);
    char text[32];
    std::snprintf(text, sizeof text, "%s %s %2d %02d:%02d:%02d", days[tm.tm_wday % 7], months[tm.tm_mon % 12],
                  tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100);
    return text;
}

std::string mailq_id_with_mark(const EntrySnapshot& entry) {
    if (entry.folder == QueueFolder::hold) return entry.id + "!";
    if (entry.active) return entry.id + "*";
    return entry.id;
}

const char* json_queue_name(const EntrySnapshot& entry) {
    if (entry.folder == QueueFolder::hold) return "hold";
    if (entry.active) return "active";
    bool tried = std::any_of(entry.state.recipients.begin(), entry.state.recipients.end(),
                             [](const RecipientState& r) { return r.attempts > 0; });
    return tried ? "deferred" : "incoming";
}

std::string printable_text(std::string_view text) {
    std::string out;
    append_printable(out, text);
    return out;
}

void QueueListing::begin_entry(std::string& out) {
    if (format_ == ListingFormat::text) out += requests_ == 0 ? heading : "\n";
    ++requests_;
}

void QueueListing::add(const EntrySnapshot& entry, std::string& out) {
    begin_entry(out);
    bytes_ += entry.message_size;
    if (format_ == ListingFormat::text) append_text_entry(entry, out);
    else append_json_entry(entry, out);
}

void QueueListing::add_unreadable(std::string_view id, QueueFolder folder, std::string_view reason, std::string& out) {
    begin_entry(out);
    bool held = folder == QueueFolder::hold;
    if (format_ == ListingFormat::text) {
        std::string marked = std::string(id) + (held ? "!" : "");
        out += fmt::format("{:<11} {:>8} {:<20} (unreadable: {})\n", marked, "", "", printable_text(reason));
    } else {
        out += fmt::format("{{\"queue_name\": \"{}\", \"queue_id\": {}, \"held\": {}, \"unreadable\": {}}}\n",
                           held ? "hold" : "deferred", json_quote(id), held, json_quote(reason));
    }
}

core::Result<std::vector<QueuedName>> sorted_entry_names(const Spool& spool, const std::vector<QueueFolder>& folders) {
    std::vector<QueuedName> names;
    for (QueueFolder folder : folders) {
        auto listed = spool.for_each_entry(folder, [&](const std::string& id) {
            names.push_back({id, folder});
            return true;
        });
        if (!listed) return core::unexpected(listed.error());
    }
    // Only the names are sorted (a 15-character ID fits std::string's own buffer):
    // memory stays a few dozen bytes per entry whatever the entries hold.
    std::sort(names.begin(), names.end(), [](const QueuedName& a, const QueuedName& b) { return a.id < b.id; });
    names.erase(std::unique(names.begin(), names.end(), [](const QueuedName& a, const QueuedName& b) { return a.id == b.id; }),
                names.end());
    return names;
}

namespace {

// Reads a batch of entries on every core: mailq's time is the kernel's open/read per
// entry, and the entries are independent. The output is still written in ID order.
std::vector<std::optional<core::Result<EntrySnapshot>>> read_batch(const Spool& spool,
                                                                   const std::vector<QueuedName>& names,
                                                                   size_t begin, size_t end) {
    std::vector<std::optional<core::Result<EntrySnapshot>>> results(end - begin);
    auto work = [&](size_t first, size_t step) {
        for (size_t i = first; i < results.size(); i += step) {
            results[i].emplace(read_entry(spool, names[begin + i].folder, names[begin + i].id));
        }
    };
    size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
    if (results.size() < 256) threads = 1;
    std::vector<std::thread> helpers;
    for (size_t t = 1; t < threads; ++t) helpers.emplace_back(work, t, threads);
    work(0, threads);
    for (auto& helper : helpers) helper.join();
    return results;
}

}  // namespace

core::Result<uint64_t> list_queue(const Spool& spool, ListingFormat format,
                                  const std::function<bool(std::string_view)>& write) {
    constexpr size_t chunk = 64 * 1024;
    constexpr size_t batch = 4096;  // snapshots held at once: memory stays bounded
    auto names = sorted_entry_names(spool, {QueueFolder::queue, QueueFolder::hold});
    if (!names) return core::unexpected(names.error());
    QueueListing listing(format);
    std::string out;
    out.reserve(chunk + 4096);
    for (size_t begin = 0; begin < names->size(); begin += batch) {
        size_t end = std::min(names->size(), begin + batch);
        auto results = read_batch(spool, *names, begin, end);
        for (size_t i = begin; i < end; ++i) {
            const auto& name = (*names)[i];
            QueueFolder folder = name.folder;
            core::Result<EntrySnapshot> entry = std::move(*results[i - begin]);
            if (!entry && entry.error().errno_value() == ENOENT) {
                // Held or released since the folders were read: it is in the other one now.
                folder = folder == QueueFolder::queue ? QueueFolder::hold : QueueFolder::queue;
                entry = read_entry(spool, folder, name.id);
            }
            if (entry) {
                listing.add(*entry, out);
            } else if (entry.error().errno_value() != ENOENT) {  // ENOENT: delivered or deleted meanwhile
                const auto& error = entry.error();
                std::string reason = error.errno_value() == EBADMSG ? error.context : error.message();
                std::string path_prefix = spool.entry_path(folder, name.id) + ": ";
                if (reason.rfind(path_prefix, 0) == 0) reason.erase(0, path_prefix.size());
                listing.add_unreadable(name.id, folder, reason, out);
            }
            if (out.size() >= chunk) {
                if (!write(out)) return listing.requests();
                out.clear();
            }
        }
    }
    out += listing.finish();
    write(out);
    return listing.requests();
}

std::string QueueListing::finish() const {
    if (format_ == ListingFormat::json) return {};
    if (requests_ == 0) return "Mail queue is empty\n";
    // Rounded up, as SPEC's example (2194 bytes: "3 Kbytes"): a queue that holds
    // anything never reads "0 Kbytes". Postfix itself rounds down.
    uint64_t kbytes = (bytes_ + 1023) / 1024;
    return fmt::format("\n-- {} Kbytes in {} Request{}.\n", kbytes, requests_, requests_ == 1 ? "" : "s");
}

}  // namespace mailroom::mail
