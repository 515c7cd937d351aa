// sendmail's command line, getopt style (see the header for the order rule).
#include "mail/sendmail_options.hpp"

#include <cstdint>
#include <limits>

namespace mailroom::mail {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
        if (!is_digit(c)) return false;
    }
    return true;
}

// Letters whose value is the rest of the word or the next word. The ignored ones are
// here too, so that their value is never mistaken for a recipient (`-L cron a@b`).
// Union of sendmail's and Postfix's option strings, minus the letters we reject.
bool takes_value(char letter) {
    switch (letter) {
        case 'A': case 'B': case 'C': case 'F': case 'L': case 'N': case 'O': case 'R':
        case 'V': case 'X': case 'b': case 'e': case 'f': case 'o': case 'p': case 'r':
            return true;
        default:
            return false;
    }
}

std::string option_name(char letter) { return std::string("-") + letter; }

// sendmail's convtime() with minutes as the default unit: "30m", "1h30m", "90" (minutes).
// Capped at 2^31 s so that later time arithmetic cannot overflow.
std::optional<std::chrono::seconds> parse_queue_interval(std::string_view text) {
    constexpr uint64_t max = std::numeric_limits<int32_t>::max();
    uint64_t total = 0;
    size_t i = 0;
    while (i < text.size()) {
        if (!is_digit(text[i])) return std::nullopt;
        uint64_t n = 0;
        for (; i < text.size() && is_digit(text[i]); ++i) {
            n = n * 10 + static_cast<uint64_t>(text[i] - '0');
            if (n > max) return std::nullopt;
        }
        uint64_t unit = 60;
        if (i < text.size()) {
            switch (text[i]) {
                case 's': unit = 1; break;
                case 'm': unit = 60; break;
                case 'h': unit = 3600; break;
                case 'd': unit = 86400; break;
                case 'w': unit = 7 * 86400; break;
                default: return std::nullopt;
            }
            ++i;
        }
        if (n > (max - total) / unit) return std::nullopt;
        total += n * unit;
    }
    if (total == 0) return std::nullopt;  // also the empty text
    return std::chrono::seconds(static_cast<int64_t>(total));
}

core::Result<void> apply_queue(SendmailOptions& o, std::string_view rest) {
    if (!rest.empty()) {
        if (!is_digit(rest.front())) {
            return core::unexpected_input("option -q" + std::string(rest) + " is not supported");
        }
        auto interval = parse_queue_interval(rest);
        if (!interval) {
            return core::unexpected_input("bad queue interval in -q" + std::string(rest) +
                                          " (want a number with s, m, h, d or w, more than 0)");
        }
        o.queue_interval = *interval;
    }
    // `sendmail -bd -q30m`, the classic daemon line: -q only sets the interval then.
    if (o.mode != SendmailMode::daemon) o.mode = SendmailMode::run_queue;
    return {};
}

core::Result<void> apply_mode(SendmailOptions& o, std::string_view value) {
    static constexpr struct {
        std::string_view letter;
        SendmailMode mode;
    } modes[] = {
        {"m", SendmailMode::deliver},      {"p", SendmailMode::list_queue},
        {"i", SendmailMode::rebuild_aliases}, {"s", SendmailMode::smtp_session},
        {"d", SendmailMode::daemon},       {"v", SendmailMode::verify},
    };
    for (const auto& m : modes) {
        if (value == m.letter) {
            o.mode = m.mode;
            return {};
        }
    }
    return core::unexpected_input("option -b" + std::string(value) + " is not supported");
}

// -o and -O set sendmail.cf options: only -oi and -od? mean something here, the rest
// (-oem, -oee, -om, -ob..., -oA...) is ignored like Postfix does.
void apply_o(SendmailOptions& o, std::string_view value) {
    if (value.front() == 'i') {
        o.dot_ends_message = false;
    } else if (value.front() == 'd' && value.size() >= 2) {
        switch (value[1]) {
            case 'i': o.delivery = DeliveryMode::interactive; break;
            case 'b': o.delivery = DeliveryMode::background; break;
            case 'q':
            case 'd': o.delivery = DeliveryMode::queue_only; break;
            default: break;
        }
    }
}

core::Result<void> apply_value(SendmailOptions& o, char letter, std::string value) {
    switch (letter) {
        case 'b': return apply_mode(o, value);
        case 'C': o.config_file = std::move(value); break;
        case 'F': o.full_name = std::move(value); break;
        case 'f':
        case 'r': o.sender = std::move(value); break;
        case 'N': o.dsn_notify = std::move(value); break;
        case 'R': o.dsn_ret = std::move(value); break;
        case 'V': o.dsn_envid = std::move(value); break;
        case 'o':
            if (!value.empty()) apply_o(o, value);
            break;
        default: break;  // -A -B -L -O -X -e -p: accepted, ignored
    }
    return {};
}

core::Result<void> apply_flag(SendmailOptions& o, char letter) {
    switch (letter) {
        case 't': o.recipients_from_headers = true; break;
        case 'i': o.dot_ends_message = false; break;
        case 'v': o.verbose = true; break;
        case 'I': o.mode = SendmailMode::rebuild_aliases; break;
        case 'G': case 'U': case 'c': case 'm': case 'x': break;  // accepted, ignored
        default: return core::unexpected_input("unknown option " + option_name(letter));
    }
    return {};
}

}  // namespace

core::Result<SendmailOptions> parse_sendmail_options(const std::vector<std::string>& args) {
    SendmailOptions o;
    bool help = false;
    bool version = false;
    size_t i = 0;
    for (; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg.size() < 2 || arg[0] != '-') break;  // the first operand ("-" is one too)
        if (arg[1] == '-') {
            if (arg == "--help") help = true;
            else if (arg == "--version") version = true;
            else return core::unexpected_input("unknown option " + arg);
            continue;
        }
        for (size_t k = 1; k < arg.size(); ++k) {
            const char letter = arg[k];
            const std::string_view rest = std::string_view(arg).substr(k + 1);
            if (letter == 'q') {
                if (auto r = apply_queue(o, rest); !r) return core::unexpected(r.error());
                break;
            }
            if (letter == 'h') {
                // The hop count takes digits only; anything else asks for help ("-help").
                if (rest.empty() && i + 1 < args.size() && all_digits(args[i + 1])) ++i;
                else if (!all_digits(rest)) help = true;
                break;
            }
            if (takes_value(letter)) {
                std::string value;
                if (!rest.empty()) value = std::string(rest);
                else if (i + 1 < args.size()) value = args[++i];
                else return core::unexpected_input("option " + option_name(letter) + " needs a value");
                if (auto r = apply_value(o, letter, std::move(value)); !r) {
                    return core::unexpected(r.error());
                }
                break;
            }
            if (auto r = apply_flag(o, letter); !r) return core::unexpected(r.error());
        }
    }
    o.recipients.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
    if (help) o.mode = SendmailMode::help;
    else if (version) o.mode = SendmailMode::version;
    return o;
}

std::string_view sendmail_synopsis() {
    return "sendmail [-t] [-i] [-f sender] [-F full-name] [-odi|-odb|-odq] [-v] [-C file] "
           "[-bm|-bp|-bi|-bs|-bd|-bv] [-q[interval]] [--] [recipient ...]";
}

}  // namespace mailroom::mail
