// Any bytes as an SMTP/LMTP command line and as the arguments of MAIL, RCPT and
// BDAT, under every PathRules: a value or a refusal, never a crash. A refusal is a
// permanent 5xx whose text can go on a reply line; a MAIL or RCPT that passes holds
// an address that renders without CR, LF or NUL and parses back to itself, and only
// parameter values the spool's own checks accept; xtext survives a round trip.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "smtp/command.hpp"

using namespace mailroom;
using namespace mailroom::smtp;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

bool has_line_breaker(std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) != s.npos; }

template <typename T>
const T* check(const std::variant<T, Refusal>& result) {
    if (const auto* refusal = std::get_if<Refusal>(&result)) {
        require(refusal->reply_code >= 500 && refusal->reply_code <= 559);
        require(refusal->status.is_permanent());
        require(!refusal->status.text().empty() && !has_line_breaker(refusal->status.text()));
        return nullptr;
    }
    return std::get_if<T>(&result);
}

void check_address(const mail::Address& address, bool utf8) {
    require(!has_line_breaker(address.str()));
    if (!utf8) require(!address.needs_smtputf8());
    if (address.is_null()) return;
    mail::ParseFlags flags{.allow_null = false, .allow_utf8 = true};
    auto again = mail::Address::parse(address.path(), mail::ParseMode::path, flags);
    require(again && again->same_mailbox(address));
}

void check_mail(std::string_view argument, const PathRules& rules) {
    const auto parsed = parse_mail_from(argument, rules);
    const MailFrom* mail = check(parsed);
    if (!mail) return;
    check_address(mail->sender, rules.allow_utf8 || mail->smtputf8);
    require(mail->envid.empty() || mail::is_valid_envid(mail->envid));
    require(mail->auth.empty() || mail->auth == "<>" || decode_xtext(mail->auth));
}

void check_rcpt(std::string_view argument, const PathRules& rules) {
    const auto parsed = parse_rcpt_to(argument, rules);
    const RcptTo* rcpt = check(parsed);
    if (!rcpt) return;
    require(!rcpt->recipient.is_null());
    check_address(rcpt->recipient, rules.allow_utf8);
    require(rcpt->dsn.orcpt.empty() || mail::is_valid_orcpt(rcpt->dsn.orcpt));
    require(rcpt->dsn.notify == 0 || mail::parse_dsn_notify(mail::format_dsn_notify(rcpt->dsn.notify)) == rcpt->dsn.notify);
}

void check_line(std::string_view line) {
    const auto parsed = parse_command_line(line);
    if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
        require(refusal->reply_code == 500 && refusal->status.code() == "5.5.2");
    }
    const CommandLine* command = check(parsed);
    if (!command) return;
    const bool long_ok = command->verb == Verb::mail || command->verb == Verb::rcpt;
    require(line.size() + 2 <= (long_ok ? parameter_line_limit : command_line_limit));
    // The name is the line's first word, upper-cased.
    require(command->name.size() <= line.size() && command->name.find(' ') == std::string::npos);
    for (size_t i = 0; i < command->name.size(); ++i) {
        char c = line[i];
        require(command->name[i] == ((c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c));
    }
    for (unsigned char c : command->argument) require(c == '\t' || (c >= 0x20 && c != 0x7f));
    require(command->argument.empty() || (command->argument.back() != ' ' && command->argument.back() != '\t'));
    // What the session does next with the argument.
    if (command->verb == Verb::mail) check_mail(command->argument, PathRules{});
    if (command->verb == Verb::rcpt) check_rcpt(command->argument, PathRules{});
    if (command->verb == Verb::bdat) check(parse_bdat(command->argument));
}

void check_xtext(std::string_view text) {
    std::string encoded = encode_xtext(text);
    for (unsigned char c : encoded) require(c >= 33 && c <= 126 && c != '=');
    require(decode_xtext(encoded) == std::string(text));
    if (auto decoded = decode_xtext(text)) {
        require(decoded->size() <= text.size());
        require(decode_xtext(encode_xtext(*decoded)) == *decoded);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    PathRules rules{.allow_utf8 = (data[0] & 1) != 0, .lenient = (data[0] & 2) != 0};
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    check_line(text);
    check_mail(text, rules);
    check_rcpt(text, rules);
    const auto chunk = parse_bdat(text);
    if (const BdatChunk* c = check(chunk)) require(c->size <= 9'999'999'999'999'999'999u);
    check_xtext(text);
    return 0;
}
