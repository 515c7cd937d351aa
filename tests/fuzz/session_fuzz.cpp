// Any bytes as a client's side of an SMTP or LMTP session, fed to a Session in
// pieces the input chooses, the way lib/net's server feeds it (unconsumed bytes wait,
// Next::commit is answered with committed(), alternately delivered and deferred).
// Checked: every line the session writes is a reply line ("DDD" then ' ' or '-',
// no CR or LF inside, CRLF-ended, at most 512 octets); it never consumes more than
// it was given, nor anything after Next::close; Next::read means all was consumed;
// after the data, LMTP answers once per accepted recipient and SMTP once; the door
// gets write() only between a successful begin_data and the commit or abort; and the
// same bytes fed whole give the same replies and messages.
//
// Input layout: byte 0 = flags (bit 0 LMTP, bit 1 bare newlines normalized, bit 2
// small limits, bit 3 begin_data fails, bit 4 the door's disk fills after 200
// bytes, bits 5-7 = k); then k bytes, each a piece length minus one, used in turn;
// then the client's bytes. k = 0 feeds them whole.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "smtp/session.hpp"

using namespace mailroom;
using mailroom::mail::Status;
using namespace mailroom::smtp;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

struct Plan {
    bool fail_begin = false;
    bool disk_fills = false;
};

// A door that keeps the Door contract's order and aborts the process when the
// session breaks it. Recipients starting with 'n' are unknown, with 't' deferred, so
// that refused recipients are explored too.
class FuzzDoor final : public Door {
public:
    explicit FuzzDoor(Plan plan) : plan_(plan) {}

    Status open(const Transaction&) override {
        require(!open_);
        open_ = true;
        return Status::ok("sender ok", "2.1.0");
    }
    Status add_recipient(const Transaction&, const RcptTo& rcpt) override {
        require(open_ && !in_data_);
        const std::string& local = rcpt.recipient.local_part();
        if (!local.empty() && local[0] == 'n') return Status::perm("5.1.1", "no such user");
        if (!local.empty() && local[0] == 't') return Status::temp("4.2.2", "mailbox full");
        return Status::ok("recipient ok", "2.1.5");
    }
    core::Result<std::string> begin_data(const Transaction& transaction) override {
        require(open_ && !in_data_ && !transaction.recipients.empty());
        if (plan_.fail_begin) return core::unexpected_errno("mkstemp", 5);
        in_data_ = true;
        text_.clear();
        return std::string("fuzzid");
    }
    core::Result<void> write(std::string_view text) override {
        require(in_data_);
        if (plan_.disk_fills && text_.size() + text.size() > 200) return core::unexpected_errno("write", 28);
        text_ += text;
        return {};
    }
    void abort() override {
        open_ = false;
        in_data_ = false;
        text_.clear();
    }
    // The driver's commit after Next::commit.
    void commit() {
        require(open_ && in_data_);
        messages.push_back(text_);
        open_ = false;
        in_data_ = false;
        text_.clear();
    }

    std::vector<std::string> messages;

private:
    Plan plan_;
    bool open_ = false;
    bool in_data_ = false;
    std::string text_;
};

// Every line from `from` on is a whole reply line; returns how many there are.
size_t check_replies(const std::string& out, size_t from) {
    size_t lines = 0;
    while (from < out.size()) {
        const size_t end = out.find("\r\n", from);
        require(end != std::string::npos);
        const std::string_view line(out.data() + from, end - from);
        require(line.size() >= 4 && line.size() + 2 <= 512);
        require(line[0] >= '2' && line[0] <= '5');
        require(line[1] >= '0' && line[1] <= '9' && line[2] >= '0' && line[2] <= '9');
        require(line[3] == ' ' || line[3] == '-');
        require(line.find('\r') == std::string_view::npos && line.find('\n') == std::string_view::npos);
        ++lines;
        from = end + 2;
    }
    return lines;
}

struct Outcome {
    std::string out;
    std::vector<std::string> messages;
    size_t consumed = 0;
    bool closed = false;
};

Outcome play(uint8_t flags, std::string_view lengths, std::string_view input) {
    SessionSettings settings;
    settings.dialect = (flags & 1) ? Dialect::lmtp : Dialect::smtp;
    settings.hostname = "mx.example.org";
    settings.bare_newline = (flags & 2) ? BareNewline::normalize : BareNewline::reject;
    if (flags & 4) {
        settings.max_recipients = 2;
        settings.size_limit = 64;
        settings.error_limit = 3;
    } else {
        settings.size_limit = 100'000;
    }
    const bool lmtp = settings.dialect == Dialect::lmtp;
    // SMTP gets the listener's extras: STARTTLS, AUTH (under TLS), ETRN.
    settings.tls_offered = settings.auth_offered = settings.etrn = !lmtp;
    FuzzDoor door(Plan{(flags & 8) != 0, (flags & 16) != 0});
    core::FixedClock clock(1'700'000'000);
    Session session(settings, ClientInfo{"client.example", "192.0.2.1"}, door, clock);

    Outcome result;
    std::string& out = result.out;
    out = session.greeting();
    check_replies(out, 0);
    std::string pending;
    size_t at = 0, piece = 0, commits = 0;
    while (at < input.size() && !result.closed) {
        const size_t step =
            lengths.empty() ? input.size() : static_cast<uint8_t>(lengths[piece++ % lengths.size()]) + size_t{1};
        pending.append(input.substr(at, step));
        at += std::min(step, input.size() - at);
        std::string_view view(pending);
        for (;;) {
            const size_t before = out.size();
            const auto progress = session.feed(view, out);
            require(progress.consumed <= view.size());
            check_replies(out, before);
            view.remove_prefix(progress.consumed);
            result.consumed += progress.consumed;
            require(result.consumed <= at);
            if (progress.next == Session::Next::close) {
                result.closed = true;
                // Closed: nothing more is read or said.
                const size_t said = out.size();
                const auto again = session.feed(view.empty() ? std::string_view("NOOP\r\n") : view, out);
                require(again.consumed == 0 && again.next == Session::Next::close && out.size() == said);
                require(session.closed());
                break;
            }
            if (progress.next == Session::Next::read) {
                require(view.empty());
                break;
            }
            if (progress.next == Session::Next::starttls) {
                // Only ever with nothing after it in the input (else 554 and close).
                require(!lmtp && view.empty());
                require(out.size() >= 30 && out.compare(out.size() - 30, 30, "220 2.0.0 Ready to start TLS\r\n") == 0);
                session.tls_started(TlsFacts{"TLSv1.3", "TLS_AES_128_GCM_SHA256", 128});
                require(session.tls().active() && session.idle());
                continue;
            }
            if (progress.next == Session::Next::authenticate) {
                require(!lmtp && session.tls().active());
                auto [user, password] = session.take_credentials();
                require(!user.empty() && !password.empty() && user.size() <= 1024 && password.size() <= 1024);
                const AuthVerdict verdict = password == "pw"    ? AuthVerdict::accepted
                                            : password == "tmp" ? AuthVerdict::unavailable
                                                                : AuthVerdict::refused;
                const size_t mark = out.size();
                session.authenticated(verdict, out, user);
                check_replies(out, mark);
                continue;
            }
            // The data ended: deliver and defer in turn, per recipient for LMTP.
            const size_t recipients = session.transaction().recipients.size();
            require(recipients >= 1 && recipients <= settings.max_recipients);
            std::vector<Status> outcomes;
            for (size_t i = 0; i < (lmtp ? recipients : 1); ++i) {
                outcomes.push_back(((commits + i) % 2 == 0) ? Status::ok() : Status::temp("4.3.0", "try again"));
            }
            ++commits;
            door.commit();
            const size_t mark = out.size();
            session.committed(outcomes, out);
            require(check_replies(out, mark) == (lmtp ? recipients : 1));
            require(session.idle());
        }
        pending.erase(0, pending.size() - view.size());
    }
    require(result.consumed <= input.size());
    result.messages = door.messages;
    return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t flags = data[0];
    const size_t k = std::min<size_t>(flags >> 5, size - 1);
    std::string_view lengths(reinterpret_cast<const char*>(data + 1), k);
    std::string_view input(reinterpret_cast<const char*>(data + 1 + k), size - 1 - k);
    const Outcome pieces = play(flags, lengths, input);
    if (k == 0) return 0;
    // The chunking of the bytes is the network's, not the client's: it changes nothing
    // — except around STARTTLS, where bytes in the same read as the command are refused
    // (they were sent before the client could have seen the 220).
    const Outcome whole = play(flags, {}, input);
    for (const Outcome* outcome : {&pieces, &whole}) {
        if (outcome->out.find("Ready to start TLS") != std::string::npos ||
            outcome->out.find("pipelining after STARTTLS") != std::string::npos)
            return 0;
    }
    require(pieces.out == whole.out);
    require(pieces.messages == whole.messages);
    require(pieces.consumed == whole.consumed);
    require(pieces.closed == whole.closed);
    return 0;
}
