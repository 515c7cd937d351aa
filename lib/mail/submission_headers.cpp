// Formats of the header fields sendmail adds (see the header for each form).
#include "mail/submission_headers.hpp"

#include <cstdio>
#include <cstdlib>

#include "mail/address.hpp"

namespace mailroom::mail {

namespace {


bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

// RFC 5322 atext, with RFC 6532's 8-bit text.
bool is_atext(unsigned char c) {
    if (c >= 0x80) return true;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
           std::string_view::npos;
}

// A header value from outside text: every control character becomes a space, so the
// text cannot end the field or start another one.
std::string printable(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (is_control(static_cast<unsigned char>(c))) c = ' ';
    }
    return out;
}

std::string_view trim_spaces(std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    return s;
}

}  // namespace

std::string received_header(std::string_view myhostname, uid_t uid, std::string_view queue_id,
                            std::time_t when) {
    return "Received: by " + printable(myhostname) + " (mailroom, from userid " +
           std::to_string(uid) + ")\n\tid " + printable(queue_id) + "; " + rfc5322_date(when) +
           "\n";
}

std::string display_name(std::string_view full_name) {
    const std::string clean = printable(full_name);
    const std::string_view name = trim_spaces(clean);
    bool plain = true;
    for (char c : name) {
        if (c != ' ' && !is_atext(static_cast<unsigned char>(c))) plain = false;
    }
    if (plain) return std::string(name);
    std::string quoted = "\"";
    for (char c : name) {
        if (c == '"' || c == '\\') quoted += '\\';
        quoted += c;
    }
    return quoted + "\"";
}

std::string from_header(std::string_view full_name, std::string_view login,
                        std::string_view myhostname) {
    const std::string address = Address::quote_local(printable(login)) + "@" + printable(myhostname);
    const std::string name = display_name(full_name);
    if (name.empty()) return "From: " + address + "\n";
    return "From: " + name + " <" + address + ">\n";
}

std::string date_header(std::time_t when) { return "Date: " + rfc5322_date(when) + "\n"; }

std::string message_id_header(std::time_t when, std::string_view queue_id,
                              std::string_view myhostname) {
    std::tm tm{};
    if (::gmtime_r(&when, &tm) == nullptr) {
        std::time_t epoch = 0;
        ::gmtime_r(&epoch, &tm);
    }
    char stamp[96];
    std::snprintf(stamp, sizeof stamp, "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return "Message-ID: <" + std::string(stamp) + "." + printable(queue_id) + "@" +
           printable(myhostname) + ">\n";
}

}  // namespace mailroom::mail
