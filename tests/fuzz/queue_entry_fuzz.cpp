// Any bytes as a queue entry's first line and tail (what a crash, a disk error or a
// hand edit can leave in the spool), read as version 1 and as version 2: an EBADMSG
// error with a message, or an entry whose envelope and leaves format and parse back
// to themselves, with state for every recipient and leaf. The same bytes also drive
// a generator of version 2 envelopes, expansion groups and state records: what the
// writer's checks accept must read back exactly, and nothing may crash.
#include <fuzzer/FuzzedDataProvider.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "queue/queue_entry.hpp"

using namespace mailroom::mail;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

bool same_envelope(const Envelope& a, const Envelope& b) {
    if (a.sender != b.sender || a.recipients != b.recipients || a.submitter_uid != b.submitter_uid ||
        a.arrival_micros != b.arrival_micros || a.ret != b.ret || a.envid != b.envid || a.client_name != b.client_name ||
        a.client_address != b.client_address || a.helo != b.helo || a.protocol != b.protocol || a.auth != b.auth ||
        a.tls_protocol != b.tls_protocol || a.tls_cipher != b.tls_cipher) {
        return false;
    }
    for (size_t i = 0; i < a.recipients.size(); ++i) {
        if (!(a.dsn(i) == b.dsn(i))) return false;
    }
    return true;
}

void check_state_shape(const ParsedTail& parsed) {
    const size_t n = parsed.envelope.recipients.size();
    require(parsed.state.recipients.size() == n);
    require(parsed.state.expansions.size() == n);
    for (size_t k = 0; k < parsed.state.leaves.size(); ++k) {
        const LeafRecord& leaf = parsed.state.leaves[k].leaf;
        require(leaf.index == n + k && leaf.recipient < n);
    }
    for (size_t i = 0; i < n; ++i) {
        for (const LeafState* l : parsed.state.current_leaves(i)) require(l->leaf.recipient == i && !l->superseded);
    }
    (void)parsed.state.all_done();
    (void)parsed.state.next_try();
}

void check_parse(std::string_view text, int version) {
    auto parsed = parse_entry_tail(text, version);
    if (!parsed) {
        require(parsed.error().code.value() == EBADMSG && !parsed.error().context.empty());
        return;
    }
    require(parsed->valid_length <= text.size());
    check_state_shape(*parsed);
    // The envelope formats (as version 2) and parses back to itself; so does every
    // leaf, each put in a group of its own.
    std::string again_text = format_envelope(parsed->envelope);
    if (version == 2) require(static_cast<bool>(check_envelope(parsed->envelope)));
    else if (!check_envelope(parsed->envelope)) return;  // a v1 oddity (unbalanced quote) v2 would not write
    for (const auto& l : parsed->state.leaves) again_text += format_expansion(ExpansionRecord{l.leaf.recipient, 0, {l.leaf}});
    auto again = parse_entry_tail(again_text);
    require(again && same_envelope(again->envelope, parsed->envelope));
    require(again->state.leaves.size() == parsed->state.leaves.size());
    for (size_t k = 0; k < again->state.leaves.size(); ++k) {
        require(again->state.leaves[k].leaf == parsed->state.leaves[k].leaf);
    }
}

std::string pick(FuzzedDataProvider& in, std::initializer_list<const char*> choices) {
    size_t at = in.ConsumeIntegralInRange<size_t>(0, choices.size() - 1);
    return *(choices.begin() + at);
}

// A field: mostly plausible, sometimes any bytes (the checks must then refuse or keep it exactly).
std::string field(FuzzedDataProvider& in, std::initializer_list<const char*> plausible) {
    if (in.ConsumeBool()) return pick(in, plausible);
    return in.ConsumeRandomLengthString(40);
}

void check_generated(FuzzedDataProvider& in) {
    Envelope e;
    e.sender = field(in, {"alice@host.example", "", "\"a b\"@x"});
    size_t n = in.ConsumeIntegralInRange<size_t>(1, 4);
    for (size_t i = 0; i < n; ++i) {
        e.recipients.push_back(field(in, {"bob@x", "\"odd > name\"@x", "team", "j\xc3\xb6rg@x"}));
        RecipientDsn dsn;
        dsn.notify = in.ConsumeIntegralInRange<unsigned>(0, 15);
        dsn.orcpt = field(in, {"", "rfc822;bob@x", "rfc822;a+2Bb", "utf-8;j\xc3\xb6rg@x"});
        if (in.ConsumeBool()) e.recipient_dsn.push_back(dsn);
    }
    e.submitter_uid = in.ConsumeIntegral<uid_t>();
    e.arrival_micros = in.ConsumeIntegralInRange<uint64_t>(0, 4'000'000'000ull * 1'000'000);
    e.ret = static_cast<DsnReturn>(in.ConsumeIntegralInRange<int>(0, 2));
    e.envid = field(in, {"", "QQ314159", "a+2B"});
    if (in.ConsumeBool()) {
        e.client_name = field(in, {"unknown", "mail.far.example"});
        e.client_address = field(in, {"192.0.2.7", "2001:db8::1", "fe80::1%eth0"});
    }
    e.helo = field(in, {"", "[192.0.2.7]", "mail.far.example"});
    e.protocol = field(in, {"", "ESMTPSA", "LMTP", "local"});
    e.auth = field(in, {"", "alice"});
    if (in.ConsumeBool()) {
        e.tls_protocol = field(in, {"TLSv1.3"});
        e.tls_cipher = field(in, {"TLS_AES_256_GCM_SHA384"});
    }
    if (!check_envelope(e)) return;
    std::string text = format_envelope(e);
    auto parsed = parse_entry_tail(text);
    require(parsed && same_envelope(parsed->envelope, e) && parsed->valid_length == text.size());

    // A log: expansion groups (some refused by the writer's check) and state records.
    EntryState state = parsed->state;
    std::vector<size_t> expanded_groups;
    while (in.remaining_bytes() > 0) {
        if (in.ConsumeBool()) {
            ExpansionRecord x;
            x.recipient = in.ConsumeIntegralInRange<size_t>(0, n);
            x.time = in.ConsumeIntegralInRange<std::time_t>(0, 1'000'000);
            size_t count = in.ConsumeIntegralInRange<size_t>(0, 3);
            for (size_t k = 0; k < count; ++k) {
                LeafRecord leaf;
                leaf.index = state.next_leaf_index() + k;
                leaf.recipient = x.recipient;
                leaf.kind = static_cast<LeafKind>(in.ConsumeIntegralInRange<int>(0, 4));
                leaf.address = field(in, {"team@x", "\"a > b\"@x"});
                leaf.provenance = field(in, {"aliases:12", "-", "~bob/.forward:1", "/etc/mail/a list.inc:3", "100%"});
                leaf.owner = field(in, {"", "owner-team@x"});
                leaf.target = field(in, {"bob", "/var/log/x y", "|cat", "exit 75", "x@far", "5.1.1 gone", "4.2.0"});
                x.leaves.push_back(std::move(leaf));
            }
            if (!check_expansion(state, x)) continue;
            text += format_expansion(x);
            apply_expansion(state, x);
        } else {
            StateRecord r;
            r.kind = static_cast<StateRecord::Kind>(in.ConsumeIntegralInRange<int>(0, 5));
            r.indexes = {in.ConsumeIntegralInRange<size_t>(0, state.next_leaf_index())};
            if (r.kind == StateRecord::Kind::notified && in.ConsumeBool()) {
                r.indexes.push_back(in.ConsumeIntegralInRange<size_t>(0, state.next_leaf_index()));
            }
            r.time = in.ConsumeIntegralInRange<std::time_t>(0, 1'000'000);
            r.next_try = r.kind == StateRecord::Kind::deferred ? in.ConsumeIntegralInRange<std::time_t>(0, 2'000'000) : 0;
            r.code = pick(in, {"2.0.0", "4.2.0", "5.1.1"});
            r.text = in.ConsumeRandomLengthString(20);
            r.notice_id = pick(in, {"-", "NOTICE0000001"});
            if (!check_state_record(state, r)) continue;
            text += format_state_record(r);
            apply_state_record(state, r);
        }
    }
    auto log = parse_entry_tail(text);
    require(log && log->valid_length == text.size());
    check_state_shape(*log);
    require(log->state.leaves.size() == state.leaves.size());
    for (size_t k = 0; k < state.leaves.size(); ++k) {
        require(log->state.leaves[k].leaf == state.leaves[k].leaf);
        require(log->state.leaves[k].superseded == state.leaves[k].superseded);
        require(log->state.leaves[k].state.phase == state.leaves[k].state.phase);
    }
    require(log->state.all_done() == state.all_done() && log->state.next_try() == state.next_try());
    // Any cut of the text reads (a torn append) or is corrupt only inside the envelope.
    size_t cut = text.size() - (text.size() - parsed->valid_length) / 2;
    auto torn = parse_entry_tail(std::string_view(text).substr(0, cut));
    require(torn && torn->valid_length <= cut);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto header = parse_queue_first_line(text); !header) {
        require(header.error().code.value() == EBADMSG);
    } else {
        require(header->version == 1 || header->version == 2);
        require(format_queue_header(header->message_size, header->version) == text.substr(0, queue_header_size));
    }
    check_parse(text, 1);
    check_parse(text, 2);
    FuzzedDataProvider in(data, size);
    check_generated(in);
    return 0;
}
