#include "smtp/session.hpp"

#include <fmt/format.h>

#include "mail/mail_date.hpp"
#include "smtp/reply.hpp"
#include "smtp/sasl.hpp"

namespace mailroom::smtp {

namespace {

constexpr std::string_view ok_code = "2.0.0";

// The HELO argument as it may appear in Received: (printable ASCII, no comment
// delimiters that would let a client close the comment and forge the rest).
std::string header_safe(std::string_view text, size_t limit = 255) {
    std::string safe;
    for (char c : text.substr(0, limit)) {
        auto byte = static_cast<unsigned char>(c);
        safe.push_back(byte <= 0x20 || byte >= 0x7f || c == '(' || c == ')' || c == ';' ? '?' : c);
    }
    return safe.empty() ? "unknown" : safe;
}

}  // namespace

SessionSettings SessionSettings::from_config(const core::Config& config, Dialect dialect) {
    SessionSettings settings;
    settings.dialect = dialect;
    settings.hostname = config.str("myhostname");
    settings.size_limit = config.size("message_size_limit");
    settings.max_recipients = static_cast<size_t>(config.number("max_recipients"));
    settings.bare_newline =
        config.str("smtpd_bare_newline") == "normalize" ? BareNewline::normalize : BareNewline::reject;
    return settings;
}

// One row per verb: may it come now (check: replies and returns false when not),
// and what it does (proceed). Verbs without a row are refused as not implemented.
struct Session::Rule {
    Verb verb;
    bool (Session::*check)(std::string& out);
    void (*proceed)(Session& session, const CommandLine& command, std::string& out);
};

const Session::Rule* Session::rule_for(Verb verb) {
    static const Rule rules[] = {
        {Verb::helo, nullptr, [](Session& s, const CommandLine& c, std::string& o) { s.do_hello(c.verb, c.argument, o); }},
        {Verb::ehlo, nullptr, [](Session& s, const CommandLine& c, std::string& o) { s.do_hello(c.verb, c.argument, o); }},
        {Verb::lhlo, nullptr, [](Session& s, const CommandLine& c, std::string& o) { s.do_hello(c.verb, c.argument, o); }},
        {Verb::mail, &Session::check_greeted, [](Session& s, const CommandLine& c, std::string& o) { s.do_mail(c.argument, o); }},
        {Verb::rcpt, &Session::check_in_transaction, [](Session& s, const CommandLine& c, std::string& o) { s.do_rcpt(c.argument, o); }},
        {Verb::data, &Session::check_recipients, [](Session& s, const CommandLine& c, std::string& o) { s.do_data(c.argument, o); }},
        // BDAT is checked inside: a refused chunk must still be read.
        {Verb::bdat, nullptr, [](Session& s, const CommandLine& c, std::string& o) { s.do_bdat(c.argument, o); }},
        {Verb::rset, nullptr, [](Session& s, const CommandLine&, std::string& o) { s.do_rset(o); }},
        {Verb::noop, nullptr, [](Session&, const CommandLine&, std::string& o) { append_reply(o, 250, ok_code, "Ok"); }},
        {Verb::quit, nullptr, [](Session& s, const CommandLine&, std::string& o) { s.do_quit(o); }},
        // RFC 5321 3.5.3: a server that will not verify says so without a 5xx.
        {Verb::vrfy, nullptr, [](Session&, const CommandLine&, std::string& o) {
             append_reply(o, 252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
         }},
        {Verb::help, nullptr, [](Session& s, const CommandLine&, std::string& o) { s.do_help(o); }},
        {Verb::starttls, nullptr, [](Session& s, const CommandLine& c, std::string& o) { s.do_starttls(c.argument, o); }},
        {Verb::auth, nullptr, [](Session& s, const CommandLine& c, std::string& o) { s.do_auth(c.argument, o); }},
        {Verb::etrn, nullptr, [](Session& s, const CommandLine& c, std::string& o) { s.do_etrn(c.argument, o); }},
    };
    for (const auto& rule : rules) {
        if (rule.verb == verb) return &rule;
    }
    return nullptr;
}

Session::Session(SessionSettings settings, ClientInfo client, Door& door, const core::Clock& clock)
    : settings_(std::move(settings)), client_(std::move(client)), door_(door), clock_(clock) {}

std::string Session::greeting() {
    std::string out;
    if (settings_.gatekeeper) {
        auto verdict = settings_.gatekeeper->connect(client_);
        if (verdict.refusal) {
            // RFC 5321 3.1 allows a 554 greeting; the client is not worth the wait
            // for its QUIT.
            append_reply(out, verdict.refusal->reply_code, verdict.refusal->status.code(), verdict.refusal->status.text());
            state_ = State::closed;
            return out;
        }
        relay_client_ = verdict.relay;
    }
    append_reply(out, 220, "",
                 fmt::format("{} {} mailroom", settings_.hostname,
                             settings_.dialect == Dialect::lmtp ? "LMTP" : "ESMTP"));
    return out;
}

void Session::timed_out(std::string& out) const {
    append_reply(out, 421, "4.4.2", settings_.hostname + " Error: timeout exceeded");
}

void Session::shutting_down(std::string& out) const {
    append_reply(out, 421, "4.3.2", settings_.hostname + " Service shutting down, closing transmission channel");
}

Session::Progress Session::feed(std::string_view input, std::string& out) {
    size_t consumed = 0;
    for (;;) {
        switch (state_) {
            case State::committing: return {consumed, Next::commit};
            case State::closed: return {consumed, Next::close};
            case State::starting_tls: return {consumed, Next::starttls};
            case State::authenticating: return {consumed, Next::authenticate};
            default: break;
        }
        if (consumed == input.size()) return {consumed, Next::read};
        std::string_view rest = input.substr(consumed);
        switch (state_) {
            case State::data: consumed += feed_data(rest, out); break;
            case State::bdat:
            case State::bdat_discard: consumed += feed_chunk(rest, out); break;
            default: consumed += feed_command(rest, out); break;
        }
    }
}

// Frames one command line at most: returns the bytes used, having dispatched the
// line when its end was among them.
size_t Session::feed_command(std::string_view input, std::string& out) {
    const bool lf_ends = settings_.bare_newline == BareNewline::normalize;
    size_t pos = 0;
    while (pos < input.size()) {
        size_t lf = input.find('\n', pos);
        size_t end = lf == std::string_view::npos ? input.size() : lf;
        std::string_view piece = input.substr(pos, end - pos);
        if (!piece.empty()) last_was_cr_ = piece.back() == '\r';
        if (!discarding_) {
            line_.append(piece);
            // The CR of a CRLF may still come: one octet over the limit is allowed here.
            if (line_.size() > parameter_line_limit + 1) {
                discarding_ = true;
                line_.clear();
            }
        }
        if (lf == std::string_view::npos) return input.size();
        pos = lf + 1;
        // With BareNewline::reject only CRLF ends a line: a bare LF stays in it, and
        // the parser refuses the line (5.5.2), as a smuggled line end must be.
        const bool crlf = last_was_cr_;
        last_was_cr_ = false;
        if (!crlf && !lf_ends) {
            if (!discarding_) line_.push_back('\n');
            continue;
        }
        if (discarding_) {
            discarding_ = false;
            // An overlong SASL response ends the exchange (RFC 4954 4: 500 5.5.6).
            if (in_sasl()) {
                state_ = State::greeted;
                refuse(out, 500, "5.5.6", "Error: authentication exchange line too long");
            } else {
                refuse(out, 500, "5.5.2", "Error: line too long");
            }
        } else {
            if (crlf) line_.pop_back();
            std::string line = std::move(line_);
            line_.clear();
            more_input_ = pos < input.size();
            dispatch(line, out);
        }
        return pos;
    }
    return pos;
}

void Session::dispatch(std::string_view line, std::string& out) {
    if (in_sasl()) return sasl_response(line, out);
    auto parsed = parse_command_line(line);
    if (auto* refusal = std::get_if<Refusal>(&parsed)) return refuse(out, *refusal);
    const auto& command = std::get<CommandLine>(parsed);
    last_command_ = command.verb == Verb::unknown ? "UNKNOWN" : command.name;
    const Rule* rule = rule_for(command.verb);
    if (!rule) {
        if (command.verb == Verb::unknown) return refuse(out, 500, "5.5.1", "Error: command not recognized");
        return refuse(out, 502, "5.5.1", "Error: command not implemented");
    }
    if (rule->check && !(this->*(rule->check))(out)) return;
    rule->proceed(*this, command, out);
}

void Session::refuse(std::string& out, int code, std::string_view enhanced, std::string_view text) {
    append_reply(out, code, enhanced, text);
    if (++errors_ < settings_.error_limit) return;
    append_reply(out, 421, "4.7.0", settings_.hostname + " Error: too many errors");
    if (state_ != State::fresh && state_ != State::greeted && state_ != State::closed) door_.abort();
    state_ = State::closed;
}

void Session::refuse(std::string& out, const Refusal& refusal) {
    refuse(out, refusal.reply_code, refusal.status.code(), refusal.status.text());
}

void Session::refuse(std::string& out, const mail::Status& status) {
    refuse(out, status.to_reply_code(), status.code(), status.text());
}

bool Session::check_greeted(std::string& out) {
    if (state_ == State::fresh) {
        refuse(out, 503, "5.5.1", settings_.dialect == Dialect::lmtp ? "Error: send LHLO first"
                                                                     : "Error: send HELO/EHLO first");
        return false;
    }
    if (state_ != State::greeted) {
        refuse(out, 503, "5.5.1", "Error: nested MAIL command");
        return false;
    }
    return true;
}

bool Session::check_in_transaction(std::string& out) {
    if (state_ != State::mail && state_ != State::recipients) {
        refuse(out, 503, "5.5.1", "Error: need MAIL command");
        return false;
    }
    if (used_bdat_) {
        refuse(out, 503, "5.5.1", "Error: RCPT after BDAT");
        return false;
    }
    return true;
}

bool Session::check_recipients(std::string& out) {
    if (state_ == State::mail && refused_recipients_ > 0) {
        // RFC 2033 4.2: in LMTP this DATA "MUST fail with a 503 reply code".
        refuse(out, settings_.dialect == Dialect::lmtp ? 503 : 554, "5.5.1", "Error: no valid recipients");
        return false;
    }
    if (state_ != State::recipients) {
        refuse(out, 503, "5.5.1", state_ == State::mail ? "Error: need RCPT command" : "Error: need MAIL command");
        return false;
    }
    if (used_bdat_) {
        refuse(out, 503, "5.5.1", "Error: DATA after BDAT");
        return false;
    }
    return true;
}

void Session::do_hello(Verb verb, const std::string& argument, std::string& out) {
    const bool lmtp = settings_.dialect == Dialect::lmtp;
    // RFC 2033 4.1: LHLO replaces HELO and EHLO; an SMTP server knows no LHLO.
    if (lmtp != (verb == Verb::lhlo)) {
        return refuse(out, 500, "5.5.1", lmtp ? "Error: this is LMTP, send LHLO" : "Error: command not recognized");
    }
    if (argument.empty()) return refuse(out, 501, "5.5.4", fmt::format("Syntax: {} hostname",
                                                                       verb == Verb::helo ? "HELO" : verb == Verb::ehlo ? "EHLO" : "LHLO"));
    if (settings_.gatekeeper) {
        if (auto refusal = settings_.gatekeeper->helo(facts(), argument)) return refuse(out, *refusal);
    }
    // A new greeting is an implicit RSET (RFC 5321 4.1.4).
    if (state_ != State::fresh && state_ != State::greeted) door_.abort();
    reset_transaction();
    transaction_.helo = argument;
    extended_ = verb != Verb::helo;
    state_ = State::greeted;
    if (!extended_) return append_reply(out, 250, "", settings_.hostname);
    std::vector<std::string> lines{settings_.hostname, "PIPELINING"};
    lines.push_back(settings_.size_limit ? fmt::format("SIZE {}", settings_.size_limit) : "SIZE");
    if (settings_.etrn) lines.emplace_back("ETRN");
    if (settings_.tls_offered && !tls_.active()) lines.emplace_back("STARTTLS");
    if (settings_.auth_offered && tls_.active()) lines.emplace_back("AUTH PLAIN LOGIN");
    for (const char* extension : {"ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "CHUNKING", "DSN"}) {
        lines.emplace_back(extension);
    }
    append_multiline_reply(out, 250, lines);
}

void Session::do_mail(const std::string& argument, std::string& out) {
    if (settings_.auth_required && auth_user_.empty()) return refuse(out, 530, "5.7.0", "Authentication required");
    auto parsed = parse_mail_from(argument, PathRules{false, settings_.lenient_paths});
    if (auto* refusal = std::get_if<Refusal>(&parsed)) return refuse(out, *refusal);
    auto& mail = std::get<MailFrom>(parsed);
    if (settings_.size_limit && mail.size && *mail.size > settings_.size_limit) {
        return refuse(out, 552, "5.3.4", "Message size exceeds fixed limit");
    }
    if (!mail.envid.empty() && !mail::is_valid_envid(mail.envid)) {
        return refuse(out, 501, "5.5.4", "Error: bad ENVID");
    }
    if (settings_.gatekeeper) {
        if (auto refusal = settings_.gatekeeper->sender(facts(), mail)) return refuse(out, *refusal);
    }
    transaction_.mail = std::move(mail);
    transaction_.recipients.clear();
    transaction_.protocol = protocol_name();
    transaction_.auth_user = auth_user_;
    transaction_.tls = tls_;
    auto opened = door_.open(transaction_);
    if (!opened.is_ok()) return refuse(out, opened);
    state_ = State::mail;
    append_reply(out, 250, "2.1.0", "Ok");
}

void Session::do_rcpt(const std::string& argument, std::string& out) {
    auto parsed = parse_rcpt_to(argument, PathRules{transaction_.mail.smtputf8, settings_.lenient_paths});
    if (auto* refusal = std::get_if<Refusal>(&parsed)) {
        ++refused_recipients_;
        return refuse(out, *refusal);
    }
    auto& rcpt = std::get<RcptTo>(parsed);
    if (transaction_.recipients.size() >= settings_.max_recipients) {
        // Not counted as an error: a client with a long list sends the rest in
        // another transaction (RFC 5321 4.5.3.1.10).
        ++refused_recipients_;
        return append_reply(out, 452, "4.5.3", "Error: too many recipients");
    }
    if (settings_.gatekeeper) {
        if (auto refusal = settings_.gatekeeper->recipient(facts(), transaction_, rcpt)) {
            ++refused_recipients_;
            return refuse(out, *refusal);
        }
    }
    auto added = door_.add_recipient(transaction_, rcpt);
    if (!added.is_ok()) {
        ++refused_recipients_;
        // An LMTP client is a mail system handing over what it has queued: a list
        // with many unknown users is not an attack, and must not end the session.
        if (settings_.dialect == Dialect::lmtp) return append_reply(out, added);
        return refuse(out, added);
    }
    transaction_.recipients.push_back(std::move(rcpt));
    state_ = State::recipients;
    append_reply(out, 250, "2.1.5", "Ok");
}

// RFC 3848's names: S for TLS, A for AUTH ("ESMTPSA").
std::string Session::protocol_name() const {
    std::string name = settings_.dialect == Dialect::lmtp ? "LMTP" : extended_ ? "ESMTP" : "SMTP";
    if (tls_.active()) name += 'S';
    if (!auth_user_.empty()) name += 'A';
    return name;
}

std::string Session::received_header(const std::string& id) const {
    std::string from = client_.address.empty() ? header_safe(client_.name)
                                               : fmt::format("{} [{}]", header_safe(client_.name), client_.address);
    // Postfix's layout: the TLS and AUTH comments between "from" and "by".
    std::string header = fmt::format("Received: from {} ({})", header_safe(transaction_.helo), from);
    if (tls_.active()) {
        header += fmt::format("\n\t(using {} with cipher {} ({}/{} bits))", header_safe(tls_.protocol),
                              header_safe(tls_.cipher), tls_.bits, tls_.bits);
    }
    if (!auth_user_.empty()) header += fmt::format("\n\t(Authenticated sender: {})", header_safe(auth_user_));
    header += fmt::format("\n\tby {} (mailroom) with {} id {}", header_safe(settings_.hostname), protocol_name(),
                          header_safe(id));
    // "for" only names a single recipient: a list would tell each the others (Bcc).
    if (transaction_.recipients.size() == 1) header += "\n\tfor " + transaction_.recipients[0].recipient.path();
    header += "; " + mail::rfc5322_date(clock_.now()) + "\n";
    return header;
}

// The door is told the text begins and gets Received:, and the decoder that
// carries the rest is made. When the door cannot take a message now, the text is
// still read to its end and then refused.
void Session::start_text(Framing framing) {
    if (auto id = door_.begin_data(transaction_); !id) {
        text_refusal_ = mail::Status::from_error(id.error());
    } else if (auto written = door_.write(received_header(*id)); !written) {
        text_refusal_ = mail::Status::from_error(written.error());
    }
    DataDecoderSettings decoding{framing, settings_.bare_newline, settings_.size_limit};
    decoder_ = std::make_unique<DataDecoder>(decoding, [this](std::string_view text) -> core::Result<void> {
        if (text_refusal_) return {};
        return door_.write(text);
    });
}

void Session::do_data(const std::string& argument, std::string& out) {
    if (!argument.empty()) return refuse(out, 501, "5.5.4", "Syntax: DATA");
    start_text(Framing::dot);
    state_ = State::data;
    append_reply(out, 354, "", "End data with <CR><LF>.<CR><LF>");
}

size_t Session::feed_data(std::string_view input, std::string& out) {
    size_t used = decoder_->feed(input);
    if (decoder_->ended()) data_ended(out);
    return used;
}

void Session::do_bdat(const std::string& argument, std::string& out) {
    auto parsed = parse_bdat(argument);
    if (auto* refusal = std::get_if<Refusal>(&parsed)) {
        // Without a size the chunk cannot be found: the session cannot go on safely.
        refuse(out, *refusal);
        // That refusal may have reached error_limit: then it has said 421 and aborted.
        if (state_ == State::closed) return;
        append_reply(out, 421, "4.7.0", settings_.hostname + " Error: BDAT without a size, closing");
        if (state_ != State::fresh && state_ != State::greeted) door_.abort();
        state_ = State::closed;
        return;
    }
    const auto chunk = std::get<BdatChunk>(parsed);
    chunk_left_ = chunk_size_ = chunk.size;
    chunk_last_ = chunk.last;
    std::string refusal;
    if (state_ == State::fresh || state_ == State::greeted || state_ == State::mail) {
        const bool no_valid = state_ == State::mail && refused_recipients_ > 0;
        discard_state_ = state_;
        state_ = State::bdat_discard;
        const int code = no_valid && settings_.dialect == Dialect::smtp ? 554 : 503;  // RFC 2033 4.2
        refuse(out, code, "5.5.1", no_valid ? "Error: no valid recipients" : "Error: need RCPT command");
        if (state_ == State::closed) return;
        if (chunk_left_ == 0) end_of_chunk(out);
        return;
    }
    if (!used_bdat_) {
        used_bdat_ = true;
        start_text(Framing::chunks);
    }
    state_ = State::bdat;
    if (chunk_left_ == 0) end_of_chunk(out);
}

size_t Session::feed_chunk(std::string_view input, std::string& out) {
    size_t take = static_cast<size_t>(std::min<uint64_t>(chunk_left_, input.size()));
    if (state_ == State::bdat) decoder_->feed(input.substr(0, take));
    chunk_left_ -= take;
    if (chunk_left_ == 0) end_of_chunk(out);
    return take;
}

void Session::end_of_chunk(std::string& out) {
    if (state_ == State::bdat_discard) {
        state_ = discard_state_;
        return;
    }
    if (!chunk_last_) {
        state_ = State::recipients;
        return append_reply(out, 250, "2.0.0", fmt::format("{} octets received", chunk_size_));
    }
    decoder_->finish();
    data_ended(out);
}

void Session::data_ended(std::string& out) {
    std::optional<mail::Status> refused = text_refusal_;
    if (!refused && decoder_->error()) refused = decoder_->error();
    if (!refused) {
        state_ = State::committing;
        return;
    }
    last_command_ = "END-OF-MESSAGE";
    const size_t replies = settings_.dialect == Dialect::lmtp ? transaction_.recipients.size() : 1;
    for (size_t i = 0; i < replies; ++i) append_reply(out, refused->to_reply_code(), refused->code(), refused->text());
    door_.abort();
    reset_transaction();
    state_ = State::greeted;
}

void Session::committed(const std::vector<mail::Status>& outcomes, std::string& out) {
    last_command_ = "END-OF-MESSAGE";
    const size_t replies = settings_.dialect == Dialect::lmtp ? transaction_.recipients.size() : 1;
    for (size_t i = 0; i < replies; ++i) {
        if (i >= outcomes.size()) {
            // A door that answered for fewer recipients than it was given: the rest
            // are not known delivered, so the client must try them again.
            append_reply(out, 451, "4.3.0", "Error: delivery outcome unknown");
            continue;
        }
        const auto& outcome = outcomes[i];
        if (settings_.dialect == Dialect::lmtp) {
            const std::string who = transaction_.recipients[i].recipient.path();
            append_reply(out, outcome.to_reply_code(), outcome.code(), who + " " + outcome.text());
        } else {
            append_reply(out, outcome);
        }
    }
    reset_transaction();
    state_ = State::greeted;
}

void Session::do_rset(std::string& out) {
    if (state_ != State::fresh && state_ != State::greeted) door_.abort();
    reset_transaction();
    if (state_ != State::fresh) state_ = State::greeted;
    append_reply(out, 250, ok_code, "Ok");
}

void Session::do_quit(std::string& out) {
    if (state_ != State::fresh && state_ != State::greeted) door_.abort();
    append_reply(out, 221, ok_code, "Bye");
    state_ = State::closed;
}

void Session::do_help(std::string& out) {
    if (settings_.dialect == Dialect::lmtp)
        return append_reply(out, 214, ok_code, "Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
    std::string commands = "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP";
    if (settings_.tls_offered && !tls_.active()) commands += " STARTTLS";
    if (settings_.auth_offered) commands += " AUTH";
    if (settings_.etrn) commands += " ETRN";
    append_reply(out, 214, ok_code, commands);
}

void Session::reset_transaction() {
    std::string helo = std::move(transaction_.helo);
    transaction_ = Transaction{};
    transaction_.helo = std::move(helo);
    refused_recipients_ = 0;
    used_bdat_ = false;
    decoder_.reset();
    text_refusal_.reset();
}

}  // namespace mailroom::smtp

namespace mailroom::smtp {

SessionFacts Session::facts() const {
    return SessionFacts{client_, transaction_.helo, auth_user_, relay_client_, protocol_name()};
}

bool Session::in_sasl() const {
    return state_ == State::sasl_plain || state_ == State::sasl_login_user || state_ == State::sasl_login_password;
}

void Session::do_starttls(const std::string& argument, std::string& out) {
    if (settings_.dialect != Dialect::smtp || !settings_.tls_offered || tls_.active()) {
        return refuse(out, 502, "5.5.1", "Error: command not implemented");
    }
    if (!argument.empty()) return refuse(out, 501, "5.5.4", "Syntax: STARTTLS");
    if (state_ == State::fresh) return refuse(out, 503, "5.5.1", "Error: send EHLO first");
    if (state_ != State::greeted) return refuse(out, 503, "5.5.1", "Error: MAIL transaction in progress");
    if (more_input_) {
        // Text after STARTTLS in the same burst was sent in the clear: answering it
        // inside TLS would let whoever inserted it speak for the client (CVE-2011-0411).
        append_reply(out, 554, "5.5.1", "Error: command pipelining after STARTTLS, closing");
        state_ = State::closed;
        return;
    }
    append_reply(out, 220, "2.0.0", "Ready to start TLS");
    state_ = State::starting_tls;
}

void Session::tls_started(TlsFacts facts) {
    tls_ = std::move(facts);
    // RFC 3207 4.2: the client must begin again with EHLO; nothing learnt in the
    // clear is kept (HELO name, extensions, a login could not have happened).
    reset_transaction();
    transaction_.helo.clear();
    extended_ = false;
    auth_user_.clear();
    line_.clear();
    discarding_ = false;
    last_was_cr_ = false;
    state_ = State::fresh;
}

void Session::do_auth(const std::string& argument, std::string& out) {
    if (settings_.dialect != Dialect::smtp || !settings_.auth_offered) {
        return refuse(out, 502, "5.5.1", "Error: command not implemented");
    }
    // RFC 4954 4: 538 when the mechanism needs an encrypted channel first.
    if (!tls_.active()) return refuse(out, 538, "5.7.11", "Encryption required for requested authentication mechanism");
    if (state_ == State::fresh) return refuse(out, 503, "5.5.1", "Error: send EHLO first");
    if (!auth_user_.empty()) return refuse(out, 503, "5.5.1", "Error: already authenticated");
    if (state_ != State::greeted) return refuse(out, 503, "5.5.1", "Error: MAIL transaction in progress");
    std::string_view rest(argument);
    size_t space = rest.find(' ');
    std::string mechanism(rest.substr(0, space));
    std::string_view initial = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
    for (auto& c : mechanism) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    if (mechanism == "PLAIN") {
        if (initial.empty()) {
            state_ = State::sasl_plain;
            return append_reply(out, 334, "", "");
        }
        // "=" is an empty initial response (RFC 4954 4); PLAIN cannot be empty.
        state_ = State::sasl_plain;
        return sasl_response(initial == "=" ? std::string_view() : initial, out);
    }
    if (mechanism == "LOGIN") {
        state_ = State::sasl_login_user;
        if (initial.empty()) return append_reply(out, 334, "", "VXNlcm5hbWU6");  // "Username:"
        return sasl_response(initial, out);
    }
    if (mechanism.empty()) return refuse(out, 501, "5.5.4", "Syntax: AUTH mechanism");
    refuse(out, 504, "5.5.4", "Error: unsupported authentication mechanism");
}

void Session::sasl_response(std::string_view line, std::string& out) {
    auto fail = [&](const Refusal& refusal) {
        sasl_user_.clear();
        sasl_password_.clear();
        state_ = State::greeted;
        refuse(out, refusal);
    };
    if (state_ == State::sasl_plain) {
        auto decoded = decode_plain_response(line);
        if (auto* refusal = std::get_if<Refusal>(&decoded)) return fail(*refusal);
        auto& credentials = std::get<SaslCredentials>(decoded);
        sasl_user_ = std::move(credentials.user);
        sasl_password_ = std::move(credentials.password);
        state_ = State::authenticating;
        return;
    }
    auto decoded =
        decode_login_response(line, state_ == State::sasl_login_user ? LoginStep::user : LoginStep::password);
    if (auto* refusal = std::get_if<Refusal>(&decoded)) return fail(*refusal);
    if (state_ == State::sasl_login_user) {
        sasl_user_ = std::move(std::get<std::string>(decoded));
        state_ = State::sasl_login_password;
        return append_reply(out, 334, "", "UGFzc3dvcmQ6");  // "Password:"
    }
    sasl_password_ = std::move(std::get<std::string>(decoded));
    state_ = State::authenticating;
}

std::pair<std::string, std::string> Session::take_credentials() {
    auto taken = std::make_pair(std::move(sasl_user_), std::move(sasl_password_));
    sasl_user_.clear();
    sasl_password_.clear();
    return taken;
}

void Session::authenticated(AuthVerdict verdict, std::string& out, std::string user) {
    state_ = State::greeted;
    switch (verdict) {
        case AuthVerdict::accepted:
            auth_user_ = std::move(user);
            return append_reply(out, 235, "2.7.0", "Authentication successful");
        case AuthVerdict::unavailable:
            return append_reply(out, 454, "4.7.0", "Temporary authentication failure");
        case AuthVerdict::refused: break;
    }
    ++auth_failures_;
    if (auth_failures_ >= settings_.auth_failure_limit) {
        append_reply(out, 535, "5.7.8", "Error: authentication failed");
        append_reply(out, 421, "4.7.0", settings_.hostname + " Error: too many authentication failures");
        state_ = State::closed;
        return;
    }
    refuse(out, 535, "5.7.8", "Error: authentication failed");
}

void Session::do_etrn(const std::string& argument, std::string& out) {
    if (settings_.dialect != Dialect::smtp || !settings_.etrn) {
        return refuse(out, 502, "5.5.1", "Error: command not implemented");
    }
    if (state_ == State::fresh) return refuse(out, 503, "5.5.1", "Error: send HELO/EHLO first");
    if (state_ != State::greeted) return refuse(out, 503, "5.5.1", "Error: MAIL transaction in progress");
    // RFC 1985: "ETRN domain", "@domain" for its subdomains too; "#queue" names are
    // not kept here. A domain is letters, digits, '-' and '.', as DNS has them.
    std::string_view domain(argument);
    if (!domain.empty() && domain.front() == '@') domain.remove_prefix(1);
    bool valid = !domain.empty() && domain.size() <= 253 && domain.front() != '.' && domain.back() != '.';
    for (char c : domain) {
        valid = valid && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
    }
    if (!valid) return refuse(out, 501, "5.5.4", "Syntax: ETRN domain");
    auto flushed = door_.flush_domain(domain);
    if (!flushed) return refuse(out, 502, "5.5.1", "Error: command not implemented");
    if (!flushed->is_ok()) return refuse(out, *flushed);
    append_reply(out, 250, "2.0.0", "Queuing started");
}

}  // namespace mailroom::smtp
