// Session: one SMTP or LMTP dialogue without I/O. The driver (lib/net, `lmtpd -i`,
// the fuzzers, the unit tests) feeds it the bytes a client sent and writes back what
// it appends to `out`; the session frames command lines, parses them
// (smtp/command.hpp), decides each by a check/proceed rule per verb, and streams
// message text through a DataDecoder into its Door.
//
// The flow a driver follows:
//   out = session.greeting();
//   loop: read bytes; progress = session.feed(bytes, out); write out;
//     Next::commit: the data has ended; commit the transaction through the door as it
//       likes (LMTP: asynchronously), then session.committed(statuses, out), then feed
//       the bytes feed() did not consume (a pipelining client's next commands);
//     Next::close: write out, close.
// Replies to pipelined commands are appended in order and go out together when the
// input runs dry, as PIPELINING (RFC 2920) wants.
//
// Invariants: a command line is held only up to its limit (512 octets, 4096 for MAIL
// and RCPT); past it the line is discarded to its CRLF and refused. Message text is
// never held here: it streams to the door. A refused BDAT chunk is still read to its
// last byte, so the next command is found where it begins. After `error_limit`
// refusals the session answers 421 and closes. End of data is CRLF.CRLF only.
// Must never: let message text be read as commands or commands as text, accept DATA
// without an accepted recipient, or reply to LMTP data other than once per accepted
// recipient.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/result.hpp"
#include "mail/status.hpp"
#include "smtp/command.hpp"
#include "smtp/data_decoder.hpp"

namespace mailroom::smtp {

enum class Dialect { smtp, lmtp };

class Gatekeeper;

struct SessionSettings {
    Dialect dialect = Dialect::smtp;
    std::string hostname;          // myhostname: greeting, replies, Received:
    uint64_t size_limit = 0;       // message_size_limit, advertised with SIZE; 0 = none
    size_t max_recipients = 1000;  // past it: 452 4.5.3 (RFC 5321 4.5.3.1.10)
    BareNewline bare_newline = BareNewline::reject;
    // Refusals before the session ends with 421 (Postfix's smtpd_hard_error_limit).
    size_t error_limit = 20;
    bool lenient_paths = true;  // "MAIL FROM: <a>" and "MAIL FROM:a" (smtp/command.hpp)

    // The SMTP listener's extras (all off for LMTP and `-bs`):
    bool tls_offered = false;    // STARTTLS advertised while TLS is not on (a certificate is set)
    bool auth_offered = false;   // AUTH PLAIN LOGIN, advertised and accepted only under TLS (SPEC 7)
    bool auth_required = false;  // submission: MAIL only after AUTH (530 5.7.0)
    bool etrn = false;           // ETRN advertised and passed to the door
    size_t auth_failure_limit = 3;  // failed AUTHs before 421: a guesser must reconnect
    // Access rules and relay control; none: every client, sender and recipient the
    // door takes is accepted (lmtpd, a local `sendmail -bs`).
    std::shared_ptr<const Gatekeeper> gatekeeper;

    // Everything from mailroom.conf (myhostname, message_size_limit, max_recipients,
    // smtpd_bare_newline).
    static SessionSettings from_config(const core::Config& config, Dialect dialect);
};

// Who is on the other end, for Received: and the door's log lines.
struct ClientInfo {
    std::string name = "localhost";  // verified host name, or "unknown"
    std::string address;             // IP address; empty for a unix socket or a pipe
    // "name[address]" (just the name without an address), as Postfix's log lines name a client.
    std::string logged() const { return address.empty() ? name : name + "[" + address + "]"; }
};

// An established TLS layer, for Received: and the queue entry.
struct TlsFacts {
    std::string protocol;  // "TLSv1.3"; empty: no TLS
    std::string cipher;    // "TLS_AES_256_GCM_SHA384"
    int bits = 0;
    bool active() const { return !protocol.empty(); }
};

// The envelope as the session built it, handed to the door at each step, with what
// the session knows of its client when MAIL came.
struct Transaction {
    MailFrom mail;
    std::vector<RcptTo> recipients;  // accepted ones, in order
    std::string helo;
    std::string protocol;   // SMTP, ESMTP, ESMTPS, ESMTPSA, LMTP... (RFC 3848)
    std::string auth_user;  // the AUTH login, "" without
    TlsFacts tls;
};

// What a Gatekeeper may weigh besides the command itself.
struct SessionFacts {
    const ClientInfo& client;
    std::string_view helo;
    std::string_view auth_user;  // "" without AUTH
    bool relay_client = false;   // connect() said this client may relay
    std::string protocol;  // a copy: the session makes it on demand
};

// The listener's policy, asked by the session as each command arrives (SPEC 7):
// access rules, relay control, who an authenticated user may send as. A refusal
// is answered as it is; the session goes on (connect: the greeting refuses and the
// session closes).
class Gatekeeper {
public:
    virtual ~Gatekeeper() = default;
    struct ClientVerdict {
        std::optional<Refusal> refusal;
        bool relay = false;  // mynetworks, or a client rule OK
    };
    virtual ClientVerdict connect(const ClientInfo& client) const = 0;
    virtual std::optional<Refusal> helo(const SessionFacts& facts, std::string_view helo) const = 0;
    virtual std::optional<Refusal> sender(const SessionFacts& facts, const MailFrom& mail) const = 0;
    virtual std::optional<Refusal> recipient(const SessionFacts& facts, const Transaction& transaction,
                                             const RcptTo& rcpt) const = 0;
};

// The outcome of a password check, as the driver tells the session.
enum class AuthVerdict { accepted, refused, unavailable };

// Where a session's transactions go: lmtpd's local delivery, the queue (SMTP,
// `sendmail -bs`). Each call's Status is answered as it is (its reply code), except
// that a 2xx is answered with the session's own success text where it has one.
class Door {
public:
    virtual ~Door() = default;
    // MAIL FROM, after the session's own checks: a new transaction.
    virtual mail::Status open(const Transaction& transaction) = 0;
    // RCPT TO, after the session's own checks; `transaction` does not hold it yet.
    virtual mail::Status add_recipient(const Transaction& transaction, const RcptTo& rcpt) = 0;
    // DATA or the first BDAT: the text begins. An id for the Received: header, or a
    // refusal (a temporary file that cannot be made).
    virtual core::Result<std::string> begin_data(const Transaction& transaction) = 0;
    // Message text, LF line ends, Received: first.
    virtual core::Result<void> write(std::string_view text) = 0;
    // The transaction is dropped (RSET, a refused message, the end of the session):
    // whatever was held for it goes.
    virtual void abort() = 0;
    // ETRN DOMAIN (RFC 1985): start delivery of what waits for DOMAIN. nullopt: the
    // door has no queue to run (502).
    virtual std::optional<mail::Status> flush_domain(std::string_view) { return std::nullopt; }
};

class Session {
public:
    // starttls: the 220 is in `out`; write it, do the handshake, then tls_started().
    // authenticate: check take_credentials() and answer with authenticated().
    enum class Next { read, commit, close, starttls, authenticate };
    struct Progress {
        size_t consumed = 0;
        Next next = Next::read;
    };

    Session(SessionSettings settings, ClientInfo client, Door& door, const core::Clock& clock);

    // "220 host ESMTP mailroom" / "220 host LMTP mailroom"; a client the gatekeeper
    // refuses gets its refusal, and the session is closed.
    std::string greeting();
    // Consumes bytes, appends replies. Next::read: all consumed. Next::commit: stopped
    // right after the end of the data (committed() must come next). Next::close:
    // stop reading (QUIT, too many errors).
    Progress feed(std::string_view input, std::string& out);
    // The door's outcome for the transaction whose data ended: SMTP one Status, LMTP
    // one per accepted recipient in order. A 2xx may be answered with a fixed text.
    void committed(const std::vector<mail::Status>& outcomes, std::string& out);
    // The handshake after STARTTLS (or an smtps listener's, before the greeting)
    // succeeded: everything said before is forgotten (RFC 3207 4.2), EHLO comes next.
    void tls_started(TlsFacts facts);
    // The user and password AUTH collected (moved out: the session keeps no copy).
    std::pair<std::string, std::string> take_credentials();
    // The check of take_credentials(): 235 (then `user` is the session's login), 535
    // (counted; at auth_failure_limit also 421) or 454.
    void authenticated(AuthVerdict verdict, std::string& out, std::string user);
    const TlsFacts& tls() const { return tls_; }
    const std::string& auth_user() const { return auth_user_; }
    size_t auth_failures() const { return auth_failures_; }

    // The transaction the data ended for (valid from Next::commit to committed()).
    const Transaction& transaction() const { return transaction_; }
    // The client went quiet past the driver's timeout / the server stops.
    void timed_out(std::string& out) const;
    void shutting_down(std::string& out) const;
    // Between transactions (no MAIL given, or its data answered): a server that
    // stops may end the session here without losing a transaction.
    bool idle() const { return state_ == State::greeted || state_ == State::fresh; }
    bool closed() const { return state_ == State::closed; }
    const std::string& helo() const { return transaction_.helo; }
    // What the client last did, as Postfix's "timeout after X" and "lost connection
    // after X" name it: CONNECT, a verb (EHLO, RCPT, DATA...), END-OF-MESSAGE.
    const std::string& last_command() const { return last_command_; }

    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

private:
    enum class State {
        fresh, greeted, mail, recipients, data, bdat, bdat_discard, committing, closed,
        starting_tls, sasl_plain, sasl_login_user, sasl_login_password, authenticating
    };

    struct Rule;
    static const Rule* rule_for(Verb verb);

    size_t feed_command(std::string_view input, std::string& out);
    void dispatch(std::string_view line, std::string& out);
    size_t feed_data(std::string_view input, std::string& out);
    size_t feed_chunk(std::string_view input, std::string& out);
    void end_of_chunk(std::string& out);
    void data_ended(std::string& out);
    void refuse(std::string& out, int code, std::string_view enhanced, std::string_view text);
    void refuse(std::string& out, const Refusal& refusal);
    void refuse(std::string& out, const mail::Status& status);
    void reset_transaction();
    void start_text(Framing framing);
    std::string received_header(const std::string& id) const;
    std::string protocol_name() const;

    // The per-verb checks (a refusal reply when the verb may not come now) and
    // proceeds (the verb's work), OpenSMTPD's shape: smtp/session.cpp's table.
    bool check_greeted(std::string& out);
    bool check_in_transaction(std::string& out);
    bool check_recipients(std::string& out);
    void do_hello(Verb verb, const std::string& argument, std::string& out);
    void do_mail(const std::string& argument, std::string& out);
    void do_rcpt(const std::string& argument, std::string& out);
    void do_data(const std::string& argument, std::string& out);
    void do_bdat(const std::string& argument, std::string& out);
    void do_rset(std::string& out);
    void do_quit(std::string& out);
    void do_help(std::string& out);
    void do_starttls(const std::string& argument, std::string& out);
    void do_auth(const std::string& argument, std::string& out);
    void do_etrn(const std::string& argument, std::string& out);
    void sasl_response(std::string_view line, std::string& out);
    bool in_sasl() const;
    SessionFacts facts() const;

    SessionSettings settings_;
    ClientInfo client_;
    Door& door_;
    const core::Clock& clock_;

    State state_ = State::fresh;
    bool extended_ = false;  // EHLO/LHLO: ESMTP, parameters allowed
    Transaction transaction_;
    size_t refused_recipients_ = 0;
    size_t errors_ = 0;
    bool used_bdat_ = false;
    bool relay_client_ = false;  // the gatekeeper's word at connect
    TlsFacts tls_;
    std::string auth_user_;
    std::string sasl_user_, sasl_password_;  // between AUTH and authenticated()
    size_t auth_failures_ = 0;
    bool more_input_ = false;  // bytes followed the command line being dispatched
    std::string last_command_ = "CONNECT";

    std::string line_;          // a command line not yet ended by CRLF
    bool discarding_ = false;   // the line went past its limit: skip to its CRLF
    bool last_was_cr_ = false;  // the octet before the next one was a CR
    std::unique_ptr<DataDecoder> decoder_;
    uint64_t chunk_left_ = 0;   // BDAT: bytes of the chunk still to come
    uint64_t chunk_size_ = 0;
    bool chunk_last_ = false;
    State discard_state_ = State::fresh;  // where a refused chunk's end returns to
    std::optional<mail::Status> text_refusal_;  // why the text will be refused (door, decoder)
};

}  // namespace mailroom::smtp
