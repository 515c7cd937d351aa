#include "smtp/command.hpp"

#include <array>
#include <charconv>
#include <utility>

namespace mailroom::smtp {

namespace {

constexpr size_t crlf_octets = 2;
// Parameter names are echoed in replies: a reply line has room for a short one only.
constexpr size_t shown_name_octets = 64;
constexpr size_t max_size_digits = 20;  // UINT64_MAX has 20
constexpr size_t max_bdat_digits = 19;  // any 19 digits fit 64 bits

Refusal refused(int reply_code, std::string enhanced, std::string text) {
    return Refusal{reply_code, mail::Status::perm(std::move(enhanced), std::move(text))};
}
Refusal not_a_command(std::string text) { return refused(500, "5.5.2", std::move(text)); }
Refusal bad_argument(std::string text) { return refused(501, "5.5.4", std::move(text)); }
Refusal bad_parameter(std::string text) { return refused(555, "5.5.4", std::move(text)); }

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool all_digits(std::string_view s) {
    for (char c : s) {
        if (!is_digit(c)) return false;
    }
    return true;
}

std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_upper(c);
    return out;
}

bool starts_with_ignoring_case(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && mail::iequals_ascii(s.substr(0, prefix.size()), prefix);
}

void skip_spaces(std::string_view& s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
}

constexpr std::array<std::pair<std::string_view, Verb>, 16> verbs{{
    {"HELO", Verb::helo}, {"EHLO", Verb::ehlo}, {"LHLO", Verb::lhlo}, {"MAIL", Verb::mail},
    {"RCPT", Verb::rcpt}, {"DATA", Verb::data}, {"BDAT", Verb::bdat}, {"RSET", Verb::rset},
    {"NOOP", Verb::noop}, {"QUIT", Verb::quit}, {"VRFY", Verb::vrfy}, {"EXPN", Verb::expn},
    {"HELP", Verb::help}, {"STARTTLS", Verb::starttls}, {"AUTH", Verb::auth}, {"ETRN", Verb::etrn},
}};

Verb verb_named(std::string_view word) {
    for (const auto& [name, verb] : verbs) {
        if (mail::iequals_ascii(word, name)) return verb;
    }
    return Verb::unknown;
}

// The control character a command line must not hold, as a refusal text; "" if none.
// CR and LF get their own text: inside a line they are the bare ones of SMTP smuggling.
std::string_view control_problem(std::string_view line) {
    for (char ch : line) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '\0') return "NUL in command line";
        if (c == '\r' || c == '\n') return "bare CR or LF in command line";
        if ((c < 0x20 && c != '\t') || c == 0x7f) return "control character in command line";
    }
    return {};
}

// The length of the "<...>" that starts `text`: up to the first '>' outside a quoted
// string and an address literal (both may hold '>'); npos when it does not close.
size_t bracketed_path_length(std::string_view text) {
    bool quoted = false, literal = false;
    for (size_t i = 1; i < text.size(); ++i) {
        char c = text[i];
        if (quoted) {
            if (c == '\\') ++i;
            else if (c == '"') quoted = false;
        } else if (literal) {
            literal = c != ']';
        } else if (c == '"') {
            quoted = true;
        } else if (c == '[') {
            literal = true;
        } else if (c == '>') {
            return i + 1;
        }
    }
    return std::string_view::npos;
}

struct PathText {
    std::string_view text;
    mail::ParseMode mode;
    std::string_view parameters;  // what follows the path, from its first space
};

// Splits "<path> params" (or, lenient, "word params"). Nothing when the shape is
// wrong; a path that merely does not parse is left to Address::parse to name.
std::optional<PathText> split_path(std::string_view rest, bool lenient) {
    if (lenient) skip_spaces(rest);
    if (rest.empty()) return std::nullopt;
    if (rest.front() != '<') {
        if (!lenient) return std::nullopt;
        size_t space = rest.find(' ');
        if (space == std::string_view::npos) space = rest.size();
        return PathText{rest.substr(0, space), mail::ParseMode::bare, rest.substr(space)};
    }
    size_t length = bracketed_path_length(rest);
    if (length == std::string_view::npos) return PathText{rest, mail::ParseMode::path, {}};
    std::string_view after = rest.substr(length);
    if (!after.empty() && after.front() != ' ') return std::nullopt;
    return PathText{rest.substr(0, length), mail::ParseMode::path, after};
}

struct Parameter {
    std::string name;  // upper-cased, for comparison and replies
    std::optional<std::string_view> value;
};

// RFC 5321 4.1.2 esmtp-keyword: a letter or digit, then letters, digits and '-'.
bool is_keyword(std::string_view s) {
    if (s.empty() || !is_alnum(s.front())) return false;
    for (char c : s) {
        if (!is_alnum(c) && c != '-') return false;
    }
    return true;
}

std::string shown(std::string_view name) {
    if (name.size() <= shown_name_octets) return std::string(name);
    return std::string(name.substr(0, shown_name_octets)) + "...";
}

// The parameters after a path, one at a time: `take` answers each (nullopt to go
// on); the first refusal, from the syntax or from `take`, ends the walk.
template <typename Take>
std::optional<Refusal> for_each_parameter(std::string_view rest, Take take) {
    std::vector<std::string> seen;
    for (skip_spaces(rest); !rest.empty(); skip_spaces(rest)) {
        size_t space = rest.find(' ');
        std::string_view word = rest.substr(0, space);
        rest.remove_prefix(word.size());
        size_t equals = word.find('=');
        std::string_view keyword = word.substr(0, equals);
        if (!is_keyword(keyword)) return bad_parameter("malformed parameter");
        Parameter parameter{upper(keyword), std::nullopt};
        if (equals != std::string_view::npos) parameter.value = word.substr(equals + 1);
        for (const auto& name : seen) {
            if (name == parameter.name) return bad_parameter("duplicate parameter " + shown(name));
        }
        if (auto refusal = take(parameter)) return refusal;
        seen.push_back(std::move(parameter.name));
    }
    return std::nullopt;
}

std::optional<Refusal> unsupported(const Parameter& parameter) {
    return bad_parameter("unsupported parameter " + shown(parameter.name));
}

// RFC 1870: a decimal that must fit our counter; a client that announces more than
// 2^64 octets is not refused for its syntax but for asking what we do not implement.
std::optional<Refusal> take_size(std::optional<std::string_view> value, std::optional<uint64_t>& size) {
    if (!value || value->empty() || !all_digits(*value)) return bad_argument("SIZE must be a number");
    uint64_t parsed = 0;
    auto converted = std::from_chars(value->data(), value->data() + value->size(), parsed);
    if (value->size() > max_size_digits || converted.ec != std::errc()) return bad_parameter("SIZE out of range");
    size = parsed;
    return std::nullopt;
}

std::optional<Refusal> take_mail_parameter(const Parameter& p, MailFrom& mail) {
    const auto& v = p.value;
    if (p.name == "SIZE") return take_size(v, mail.size);
    if (p.name == "BODY") {
        if (v && mail::iequals_ascii(*v, "7BIT")) mail.body = BodyType::seven_bit;
        else if (v && mail::iequals_ascii(*v, "8BITMIME")) mail.body = BodyType::eight_bit_mime;
        else return bad_parameter("BODY must be 7BIT or 8BITMIME");
        return std::nullopt;
    }
    if (p.name == "SMTPUTF8") {
        if (v) return bad_argument("SMTPUTF8 takes no value");
        mail.smtputf8 = true;
        return std::nullopt;
    }
    if (p.name == "RET") {
        if (v && mail::iequals_ascii(*v, "FULL")) mail.ret = mail::DsnReturn::full;
        else if (v && mail::iequals_ascii(*v, "HDRS")) mail.ret = mail::DsnReturn::hdrs;
        else return bad_argument("RET must be FULL or HDRS");
        return std::nullopt;
    }
    if (p.name == "ENVID") {
        if (!v || !mail::is_valid_envid(*v)) return bad_argument("ENVID must be xtext of at most 100 octets");
        mail.envid = std::string(*v);
        return std::nullopt;
    }
    if (p.name == "AUTH") {
        // RFC 4954 5: the authenticated submitter as xtext, or "<>" for none known.
        if (!v || (*v != "<>" && (v->empty() || !decode_xtext(*v)))) return bad_argument("AUTH must be xtext or <>");
        mail.auth = std::string(*v);
        return std::nullopt;
    }
    return unsupported(p);
}

std::optional<Refusal> take_rcpt_parameter(const Parameter& p, RcptTo& rcpt) {
    if (p.name == "NOTIFY") {
        auto notify = p.value ? mail::parse_dsn_notify(*p.value) : std::nullopt;
        if (!notify) return bad_argument("NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY");
        rcpt.dsn.notify = *notify;
        return std::nullopt;
    }
    if (p.name == "ORCPT") {
        if (!p.value || !mail::is_valid_orcpt(*p.value)) return bad_argument("ORCPT must be type;xtext");
        rcpt.dsn.orcpt = std::string(*p.value);
        return std::nullopt;
    }
    return unsupported(p);
}

int upper_hex_value(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// RFC 3461 4 xchar: what stands for itself in xtext.
bool is_xchar(unsigned char c) { return c >= 33 && c <= 126 && c != '+' && c != '='; }

}  // namespace

std::variant<CommandLine, Refusal> parse_command_line(std::string_view line) {
    if (line.empty()) return not_a_command("empty line");
    std::string_view word = line.substr(0, line.find(' '));
    Verb verb = verb_named(word);
    size_t limit = (verb == Verb::mail || verb == Verb::rcpt) ? parameter_line_limit : command_line_limit;
    if (line.size() + crlf_octets > limit) return not_a_command("line too long");
    if (auto problem = control_problem(line); !problem.empty()) return not_a_command(std::string(problem));

    std::string_view argument = line.substr(word.size());
    skip_spaces(argument);
    while (!argument.empty() && (argument.back() == ' ' || argument.back() == '\t')) argument.remove_suffix(1);
    return CommandLine{verb, upper(word), std::string(argument)};
}

std::variant<MailFrom, Refusal> parse_mail_from(std::string_view argument, const PathRules& rules) {
    const auto syntax = [] { return bad_argument("syntax: MAIL FROM:<address>"); };
    if (!starts_with_ignoring_case(argument, "FROM:")) return syntax();
    auto path = split_path(argument.substr(5), rules.lenient);
    if (!path) return syntax();

    MailFrom mail;
    auto refusal = for_each_parameter(path->parameters, [&](const Parameter& p) { return take_mail_parameter(p, mail); });
    if (refusal) return *std::move(refusal);

    // RFC 6531 3.4: SMTPUTF8 on this very MAIL is what allows a UTF-8 sender.
    mail::ParseFlags flags{.allow_null = true, .allow_utf8 = rules.allow_utf8 || mail.smtputf8};
    auto sender = mail::Address::parse(path->text, path->mode, flags);
    if (!sender) return Refusal{553, mail::bad_address_status(sender.error(), mail::AddressRole::sender)};
    mail.sender = *std::move(sender);
    return mail;
}

std::variant<RcptTo, Refusal> parse_rcpt_to(std::string_view argument, const PathRules& rules) {
    const auto syntax = [] { return bad_argument("syntax: RCPT TO:<address>"); };
    if (!starts_with_ignoring_case(argument, "TO:")) return syntax();
    auto path = split_path(argument.substr(3), rules.lenient);
    if (!path) return syntax();

    RcptTo rcpt;
    auto refusal = for_each_parameter(path->parameters, [&](const Parameter& p) { return take_rcpt_parameter(p, rcpt); });
    if (refusal) return *std::move(refusal);

    // No domain required: <Postmaster> must be taken (RFC 5321 4.1.1.3), and whether
    // another bare name is a local user is the session's call (LMTP takes "user").
    mail::ParseFlags flags{.allow_null = false, .allow_utf8 = rules.allow_utf8};
    auto recipient = mail::Address::parse(path->text, path->mode, flags);
    if (!recipient) {
        return Refusal{553, mail::bad_address_status(recipient.error(), mail::AddressRole::recipient)};
    }
    rcpt.recipient = *std::move(recipient);
    return rcpt;
}

std::variant<BdatChunk, Refusal> parse_bdat(std::string_view argument) {
    const auto syntax = [] { return bad_argument("syntax: BDAT size [LAST]"); };
    skip_spaces(argument);
    std::string_view size = argument.substr(0, argument.find(' '));
    std::string_view rest = argument.substr(size.size());
    skip_spaces(rest);
    std::string_view marker = rest.substr(0, rest.find(' '));
    rest.remove_prefix(marker.size());
    skip_spaces(rest);
    // A size that passes needs no overflow check: max_bdat_digits always fit.
    if (size.empty() || size.size() > max_bdat_digits || !all_digits(size) || !rest.empty()) return syntax();
    if (!marker.empty() && !mail::iequals_ascii(marker, "LAST")) return syntax();
    BdatChunk chunk;
    std::from_chars(size.data(), size.data() + size.size(), chunk.size);
    chunk.last = !marker.empty();
    return chunk;
}

std::optional<std::string> decode_xtext(std::string_view xtext) {
    std::string text;
    text.reserve(xtext.size());
    for (size_t i = 0; i < xtext.size(); ++i) {
        auto c = static_cast<unsigned char>(xtext[i]);
        if (c == '+') {
            if (xtext.size() - i < 3) return std::nullopt;
            int high = upper_hex_value(xtext[i + 1]), low = upper_hex_value(xtext[i + 2]);
            if (high < 0 || low < 0) return std::nullopt;
            text += static_cast<char>(high * 16 + low);
            i += 2;
        } else if (is_xchar(c)) {
            text += static_cast<char>(c);
        } else {
            return std::nullopt;
        }
    }
    return text;
}

std::string encode_xtext(std::string_view text) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string xtext;
    xtext.reserve(text.size());
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (is_xchar(c)) {
            xtext += ch;
        } else {
            xtext += '+';
            xtext += hex[c >> 4];
            xtext += hex[c & 0xf];
        }
    }
    return xtext;
}

}  // namespace mailroom::smtp
