#include "core/config_keys.hpp"

#include <algorithm>
#include <limits>

namespace mailroom::core {

namespace {

using K = KeyType;

// Defaults are SPEC section 2 word for word; a change there is a change here and in
// etc/mailroom.conf (the unit test compares the three).
constexpr ConfigKey all_keys[] = {
    {"myhostname", K::host_name, "", "this host's fully qualified name (default: the system host name)",
     DefaultKind::host_name},
    {"mydomain", K::host_name, "", "domain of this host (default: myhostname minus its first label)",
     DefaultKind::host_domain},
    {"mydestination", K::list, "$myhostname, localhost.$mydomain, localhost",
     "domains delivered locally"},
    {"spool_dir", K::path, "/var/spool/mailroom", "the queue"},
    {"aliases", K::path, "/etc/aliases", "aliases source; the database is $aliases.cdb"},
    {"mailbox_format", K::mailbox_format, "mbox", "mbox or maildir"},
    {"mail_spool_dir", K::path, "/var/mail", "mbox mailboxes are $mail_spool_dir/USER"},
    {"home_mailbox", K::string, "",
     "if set, mailbox relative to the user's home: Maildir/ (trailing / = Maildir) or Mailbox"},
    {"mailbox_lock", K::lock_list, "fcntl, dotlock", "mbox locks (fcntl, dotlock), taken in this order"},
    {"lock_timeout", K::time, "60s", "past it the delivery is deferred"},
    {"recipient_delimiter", K::string, "+", "user+ext delivers to user; empty disables"},
    {"forward_path", K::list, "$home/.forward${recipient_delimiter}${extension}, $home/.forward",
     ".forward files tried in order (the first that exists is used)"},
    {"allow_mail_to_commands", K::allow_list, "alias, forward",
     "where |command targets are allowed (alias, forward, include)"},
    {"allow_mail_to_files", K::allow_list, "alias, forward",
     "where /file targets are allowed (alias, forward, include)"},
    {"default_privs", K::string, "nobody", "user for commands and files in the aliases file"},
    {"command_timeout", K::time, "1h",
     "a pipe running longer is killed with its process group and bounced; a mailbox writer, deferred"},
    {"queue_run_delay", K::time, "5m", "daemon's queue scan interval"},
    {"delivery_workers", K::number, "8", "deliveries the daemon runs in parallel (one process each)"},
    {"minimal_backoff_time", K::time, "5m", "retry schedule doubles from this"},
    {"maximal_backoff_time", K::time, "4h", "retry schedule doubles up to this"},
    {"maximal_queue_lifetime", K::time, "5d", "then a deferred recipient bounces"},
    {"delay_warning_time", K::time, "4h", "send one delay notice to the sender; 0 disables"},
    {"message_size_limit", K::size, "50M", "largest message accepted, in bytes (K, M, G suffixes)"},
    {"smtpd_listen", K::listen_list, "", "SMTP listeners, e.g. 127.0.0.1:25, [::1]:25"},
    {"submission_listen", K::listen_list, "", "port 587 style listeners: AUTH required before MAIL"},
    {"smtps_listen", K::listen_list, "", "port 465 style listeners: implicit TLS"},
    {"smtpd_tls_cert_file", K::optional_path, "", "certificate file; with the key file enables STARTTLS"},
    {"smtpd_tls_key_file", K::optional_path, "", "private key file; with the cert file enables STARTTLS"},
    {"smtpd_auth_service", K::string, "smtp",
     "PAM service for AUTH PLAIN/LOGIN (offered only over TLS)"},
    {"mynetworks", K::list, "127.0.0.0/8, [::1]/128", "clients allowed to relay without AUTH"},
    {"relayhost", K::string, "", "smart host for non-local mail, [host]:port; empty: MX lookup"},
    {"smtp_tls_security_level", K::tls_level, "may", "none, may or encrypt for outgoing SMTP"},
    {"smtp_tls_ca_file", K::optional_path, "", "CA bundle to verify servers at encrypt; empty: the system store"},
    {"smtp_sasl_password_file", K::optional_path, "", "host user:password lines for AUTH to the relayhost"},
    {"smtp_dns_servers", K::list, "",
     "DNS servers for MX and address lookups, ADDR or ADDR:PORT; empty: those of /etc/resolv.conf"},
    {"smtpd_access_file", K::optional_path, "", "access rules for SMTP clients: client, helo, sender, recipient"},
    {"local_transport", K::local_transport, "local",
     "local, or lmtp:unix:PATH / lmtp:inet:HOST:PORT to hand local mail to an LMTP server"},
    {"lmtpd_listen", K::listen_list, "unix:$spool_dir/lmtp", "where lmtpd listens"},
    {"max_recipients", K::number, "1000", "recipients per message, SMTP and LMTP"},
    {"smtpd_timeout", K::time, "300s", "SMTP server idle timeout per command"},
    {"smtpd_bare_newline", K::bare_newline, "reject", "reject or normalize a bare LF in SMTP"},
    {"log", K::log, "syslog", "syslog, stderr, or an absolute file path"},
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Leading digits times a unit, with overflow checked; nullopt if anything else is there.
std::optional<uint64_t> number_with_unit(std::string_view v, std::string_view units,
                                         std::span<const uint64_t> factors, uint64_t plain) {
    size_t digits = 0;
    while (digits < v.size() && is_digit(v[digits])) ++digits;
    if (digits == 0 || v.size() - digits > 1) return std::nullopt;
    uint64_t factor = plain;
    if (digits < v.size()) {
        size_t unit = units.find(v[digits]);
        if (unit == std::string_view::npos) return std::nullopt;
        factor = factors[unit];
    }
    constexpr uint64_t max = std::numeric_limits<int64_t>::max();  // fits both results
    uint64_t n = 0;
    for (size_t i = 0; i < digits; ++i) {
        uint64_t d = static_cast<uint64_t>(v[i] - '0');
        if (n > (max - d) / 10) return std::nullopt;
        n = n * 10 + d;
    }
    if (n != 0 && factor > max / n) return std::nullopt;
    return n * factor;
}

bool one_of(std::string_view v, std::initializer_list<std::string_view> choices) {
    return std::find(choices.begin(), choices.end(), v) != choices.end();
}

bool good_lock_list(std::string_view v) {
    auto items = split_list(v);
    if (items.empty()) return false;
    for (size_t i = 0; i < items.size(); ++i) {
        if (!one_of(items[i], {"fcntl", "dotlock"})) return false;
        if (std::find(items.begin(), items.begin() + static_cast<ptrdiff_t>(i), items[i]) !=
            items.begin() + static_cast<ptrdiff_t>(i))
            return false;
    }
    return true;
}

bool good_allow_list(std::string_view v) {
    auto items = split_list(v);
    return std::all_of(items.begin(), items.end(),
                       [](const std::string& s) { return one_of(s, {"alias", "forward", "include"}); });
}

bool good_port(std::string_view p) {
    auto n = parse_number(p);
    return n && *n >= 1 && *n <= 65535;
}

bool good_local_transport(std::string_view v) {
    if (v == "local") return true;
    if (v.starts_with("lmtp:unix:")) return v.size() > std::string_view("lmtp:unix:").size();
    if (!v.starts_with("lmtp:inet:")) return false;
    std::string_view hostport = v.substr(std::string_view("lmtp:inet:").size());
    size_t colon = hostport.rfind(':');
    return colon != std::string_view::npos && colon > 0 && good_port(hostport.substr(colon + 1));
}

}  // namespace

std::span<const ConfigKey> config_keys() { return all_keys; }

std::optional<size_t> config_key_index(std::string_view name) {
    for (size_t i = 0; i < std::size(all_keys); ++i)
        if (all_keys[i].name == name) return i;
    return std::nullopt;
}

std::vector<std::string> split_list(std::string_view value) {
    std::vector<std::string> items;
    size_t i = 0;
    while (i < value.size()) {
        while (i < value.size() && (value[i] == ',' || is_space(value[i]))) ++i;
        size_t start = i;
        while (i < value.size() && value[i] != ',' && !is_space(value[i])) ++i;
        if (i > start) items.emplace_back(value.substr(start, i - start));
    }
    return items;
}

std::optional<uint64_t> parse_size(std::string_view value) {
    static constexpr uint64_t factors[] = {1024, 1024 * 1024, 1024 * 1024 * 1024,
                                           1024, 1024 * 1024, 1024 * 1024 * 1024};
    return number_with_unit(value, "KMGkmg", factors, 1);
}

std::optional<std::chrono::seconds> parse_time(std::string_view value) {
    static constexpr uint64_t factors[] = {1, 60, 3600, 86400};
    auto n = number_with_unit(value, "smhd", factors, 1);
    if (!n) return std::nullopt;
    return std::chrono::seconds(static_cast<int64_t>(*n));
}

std::optional<uint64_t> parse_number(std::string_view value) {
    return number_with_unit(value, "", {}, 1);
}

// Lenient on purpose ('_' allowed, any case): it must accept every system host name,
// and refuse only what cannot be a name (spaces, '$', '@', empty labels).
static bool good_host_name(std::string_view v) {
    if (v.empty() || v.size() > 253) return false;
    size_t label = 0;
    for (char c : v) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '_';
        if (!ok || ++label > 63) return false;
    }
    return label > 0;
}

std::optional<std::string_view> check_value(KeyType type, std::string_view v) {
    switch (type) {
        case K::string:
        case K::list:
        case K::listen_list:  // split_list never yields an empty item
            return std::nullopt;
        case K::path:
            if (!v.empty() && v[0] == '/') return std::nullopt;
            return "an absolute path";
        case K::optional_path:
            if (v.empty() || v[0] == '/') return std::nullopt;
            return "empty or an absolute path";
        case K::host_name:
            if (good_host_name(v)) return std::nullopt;
            return "a host name: labels of letters, digits, '-' and '_' separated by dots";
        case K::size:
            if (parse_size(v)) return std::nullopt;
            return "a size: number of bytes with optional K, M or G";
        case K::number:
            if (parse_number(v)) return std::nullopt;
            return "a number";
        case K::time:
            if (parse_time(v)) return std::nullopt;
            return "a time: number with s, m, h or d";
        case K::mailbox_format:
            if (one_of(v, {"mbox", "maildir"})) return std::nullopt;
            return "mbox or maildir";
        case K::bare_newline:
            if (one_of(v, {"reject", "normalize"})) return std::nullopt;
            return "reject or normalize";
        case K::tls_level:
            if (one_of(v, {"none", "may", "encrypt"})) return std::nullopt;
            return "none, may or encrypt";
        case K::lock_list:
            if (good_lock_list(v)) return std::nullopt;
            return "a list of fcntl and dotlock, each at most once, at least one";
        case K::allow_list:
            if (good_allow_list(v)) return std::nullopt;
            return "a list of alias, forward and include, possibly empty";
        case K::local_transport:
            if (good_local_transport(v)) return std::nullopt;
            return "local, lmtp:unix:PATH or lmtp:inet:HOST:PORT";
        case K::log:
            if (v == "syslog" || v == "stderr" || (v.size() > 1 && v[0] == '/')) return std::nullopt;
            return "syslog, stderr or an absolute file path";
    }
    return "a valid value";
}

}  // namespace mailroom::core
