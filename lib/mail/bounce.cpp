#include "mail/bounce.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <string_view>

#include "mail/dsn_text.hpp"

namespace mailroom::mail {

namespace {

constexpr size_t read_chunk = 64 * 1024;
// A diagnostic holds at most a command's first 4 KB of output (SPEC section 4) plus
// what the delivery code says around it.
constexpr size_t diagnostic_cap = 8 * 1024;
constexpr size_t host_cap = 255;
constexpr size_t boundary_base_cap = 60;  // RFC 2046 allows 70: room for a ".N" suffix
constexpr int boundary_tries = 64;

// "X.Y.Z" with 1-3 digits in Y and Z (RFC 3463).
bool is_enhanced_code(std::string_view code) {
    auto digits = [&](size_t& i, size_t max) {
        size_t start = i;
        while (i < code.size() && i - start < max && std::isdigit(static_cast<unsigned char>(code[i]))) ++i;
        return i > start && (i == code.size() || !std::isdigit(static_cast<unsigned char>(code[i])));
    };
    size_t i = 0;
    if (!digits(i, 1) || i >= code.size() || code[i++] != '.') return false;
    if (!digits(i, 3) || i >= code.size() || code[i++] != '.') return false;
    return digits(i, 3) && i == code.size();
}

core::Result<void> check_request(const NoticeRequest& r) {
    if (r.recipients.empty()) return core::unexpected_input("a notice needs at least one recipient");
    if (r.original_sender.empty()) return core::unexpected_input("a notice is never sent to the null sender");
    if (r.reporting_host.empty()) return core::unexpected_input("a notice needs the reporting host name");
    // The id goes into the Message-ID and the boundary as it is: letters and digits only (SPEC section 3).
    bool id_ok = !r.notice_queue_id.empty() && r.notice_queue_id.size() <= 64 &&
                 std::all_of(r.notice_queue_id.begin(), r.notice_queue_id.end(),
                             [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
    if (!id_ok) return core::unexpected_input("a notice needs its own queue id, letters and digits only");
    for (const auto& rcpt : r.recipients) {
        const Status& s = rcpt.status;
        if (!is_enhanced_code(s.code()))
            return core::unexpected_input(fmt::format("bad status code '{}' for {}", one_line_ascii(s.code(), 32),
                                                      one_line_ascii(rcpt.address, 256)));
        if (s.is_ok() || (r.kind == NoticeKind::delay && !s.is_temporary()))
            return core::unexpected_input(fmt::format("status {} for {} does not belong in a {} notice", s.code(),
                                                      one_line_ascii(rcpt.address, 256),
                                                      r.kind == NoticeKind::delay ? "delay" : "failure"));
    }
    return {};
}

// A host name fit for Message-ID, From:, Remote-MTA and a boundary: letters, digits and
// ".-_[]:" (for address literals); anything else, from a misconfigured name or a
// remote peer's, becomes '_'.
std::string clean_host(std::string_view host) {
    std::string out = one_line_ascii(host, host_cap);
    for (char& c : out)
        if (!std::isalnum(static_cast<unsigned char>(c)) && std::string_view(".-_[]:").find(c) == std::string_view::npos)
            c = '_';
    return out;
}

// Text for a field that may hold UTF-8 (To:, under SMTPUTF8): only controls go.
std::string without_controls(std::string_view text) {
    std::string out;
    for (unsigned char c : text)
        if (c >= 0x20 && c != 0x7f) out += static_cast<char>(c);
    return out;
}

// One line of text for people, UTF-8 kept.
std::string inline_text(std::string_view text, size_t max_bytes) {
    std::string out = readable_text(text, "", max_bytes);
    std::replace(out.begin(), out.end(), '\n', ' ');
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

// What is returned of the original: the whole message, or its header section.
struct Included {
    std::string text;
    bool whole = false;
    bool header_cut = false;
};

core::Result<Included> read_included(const Message& original, uint64_t full_limit) {
    Included inc;
    auto reader = original.reader();
    inc.whole = full_limit > 0 && original.size() <= full_limit;
    const size_t cap = inc.whole ? static_cast<size_t>(original.size()) : notice_header_section_cap;
    size_t header_end = std::string::npos;
    while (inc.text.size() < cap) {
        size_t old = inc.text.size();
        inc.text.resize(std::min(cap, old + read_chunk));
        auto n = reader.read(inc.text.data() + old, inc.text.size() - old);
        if (!n) return core::unexpected(n.error());
        inc.text.resize(old + *n);
        if (*n == 0) break;
        if (inc.whole) continue;
        // The header section ends at the first empty line (or is empty when it starts with one).
        header_end = inc.text[0] == '\n' ? 0 : inc.text.find("\n\n", old > 0 ? old - 1 : 0);
        if (header_end != std::string::npos) break;
    }
    if (header_end != std::string::npos) {
        inc.text.resize(header_end == 0 ? 0 : header_end + 1);
    } else if (!inc.whole && inc.text.size() >= cap) {
        // Cut at the end of the last whole line so that the part stays a header section.
        size_t last_line_end = inc.text.rfind('\n');
        inc.text.resize(last_line_end == std::string::npos ? cap : last_line_end + 1);
        inc.header_cut = true;
    }
    if (!inc.text.empty() && inc.text.back() != '\n') inc.text += '\n';
    return inc;
}

// A status whose text starts with a reply number ("550 ...", "451-...") from a remote host.
bool is_smtp_reply(const ReportedRecipient& rcpt) {
    std::string_view text = rcpt.status.text();
    auto digit = [&](size_t i) { return std::isdigit(static_cast<unsigned char>(text[i])) != 0; };
    return !rcpt.remote_mta.empty() && text.size() >= 3 && digit(0) && digit(1) && digit(2) &&
           (text.size() == 3 || text[3] == ' ' || text[3] == '-');
}

// The explanation for people (part 1), in mailroom's own words.
std::string human_part(const NoticeRequest& r, const std::string& host, const Included& inc) {
    std::string out = fmt::format("This is an automatic notice from the mail system at {}.\n\n", host);
    if (r.kind == NoticeKind::failure) {
        out += "Your message could not be delivered to the recipients listed below,\n"
               "and no further attempts will be made. The reason for each one is\n"
               "given under its address.\n\n";
    } else {
        out += "Your message has not yet reached the recipients listed below. The\n"
               "mail system is still trying: you do not need to send it again.\n";
        if (r.retry_until)
            out += fmt::format("If it has not succeeded by {},\nthe attempts stop and you will get a failure notice.\n\n",
                               rfc5322_date(r.retry_until));
        else
            out += "If it keeps failing, the attempts stop after a while and you will\nget a failure notice.\n\n";
    }
    if (!r.postmaster_note.empty()) out += readable_text(r.postmaster_note, "", 4096) + "\n";
    out += fmt::format("For help, write to the postmaster of {} and include\nthis notice", host);
    out += r.queue_id.empty() ? std::string(".\n") : fmt::format(" (queue ID {}).\n", one_line_ascii(r.queue_id, 64));
    out += inc.whole ? "A copy of your message is attached.\n\n"
                     : "The header of your message is attached, without its body.\n";
    if (inc.header_cut) out += "The header was longer than 256 KB and has been cut short.\n";
    if (!inc.whole) out += "\n";

    for (const auto& rcpt : r.recipients) {
        out += '<' + inline_text(rcpt.address, 1024) + '>';
        if (!rcpt.original.empty() && rcpt.original != rcpt.address)
            out += " (addressed as <" + inline_text(rcpt.original, 1024) + ">)";
        out += ":\n";
        std::string reason = is_smtp_reply(rcpt)
                                 ? fmt::format("{} replied: {}", clean_host(rcpt.remote_mta), rcpt.status.text())
                                 : rcpt.status.code() + ' ' + rcpt.status.text();
        out += readable_text(reason, "    ", diagnostic_cap) + "\n";
    }
    return out;
}

// RFC 3464 Diagnostic-Code: "smtp; 550 5.1.1 text" when the status text is a remote
// server's reply, else "x-unix; text" (a local reason, or a remote failure that was no
// reply, such as a connection timeout: no reply number is made up for it).
std::string diagnostic_code(const ReportedRecipient& rcpt) {
    std::string text = one_line_ascii(rcpt.status.text(), diagnostic_cap);
    if (is_smtp_reply(rcpt)) return "smtp; " + text;
    return "x-unix; " + (text.empty() ? rcpt.status.code() : text);
}

// The report for programs (part 2), fields in RFC 3464 section 2.2 and 2.3 order.
std::string status_part(const NoticeRequest& r, const std::string& host) {
    std::string out = folded_field("Reporting-MTA", "dns; " + host);
    if (r.arrival) out += folded_field("Arrival-Date", rfc5322_date(r.arrival));
    if (!r.queue_id.empty()) out += folded_field("X-Mailroom-Queue-ID", one_line_ascii(r.queue_id, 64));
    for (const auto& rcpt : r.recipients) {
        out += '\n';
        if (!rcpt.original.empty() && rcpt.original != rcpt.address)
            out += folded_field("Original-Recipient", typed_address(rcpt.original));
        out += folded_field("Final-Recipient", typed_address(rcpt.address));
        out += folded_field("Action", r.kind == NoticeKind::failure ? "failed" : "delayed");
        out += folded_field("Status", rcpt.status.code());
        if (!rcpt.remote_mta.empty()) out += folded_field("Remote-MTA", "dns; " + clean_host(rcpt.remote_mta));
        out += folded_field("Diagnostic-Code", diagnostic_code(rcpt));
        if (rcpt.last_attempt) out += folded_field("Last-Attempt-Date", rfc5322_date(rcpt.last_attempt));
        if (r.kind == NoticeKind::delay && r.retry_until)
            out += folded_field("Will-Retry-Until", rfc5322_date(r.retry_until));
    }
    return out;
}

// "QUEUEID.TIME/host", with ".N" added until it occurs in no part. The notice's
// queue id is made after the original arrived, so a sender cannot plant it.
core::Result<std::string> choose_boundary(const NoticeRequest& r, const std::string& host,
                                          std::initializer_list<std::string_view> parts) {
    std::string base;
    for (char c : fmt::format("{}.{}/{}", r.notice_queue_id, static_cast<long long>(r.now), host)) {
        bool bchar = std::isalnum(static_cast<unsigned char>(c)) || std::string_view("'()+_,-./:=?").find(c) !=
                                                                          std::string_view::npos;
        if (bchar && base.size() < boundary_base_cap) base += c;
    }
    std::string boundary = base;
    for (int n = 1; n <= boundary_tries; ++n) {
        bool found = std::any_of(parts.begin(), parts.end(),
                                 [&](std::string_view part) { return part.find(boundary) != std::string_view::npos; });
        if (!found) return boundary;
        boundary = fmt::format("{}.{}", base, n);
    }
    return core::unexpected_input("no MIME boundary found that the original does not contain");
}

std::string message_id_stamp(std::time_t now) {
    struct tm tm {};
    ::gmtime_r(&now, &tm);
    return fmt::format("{:04}{:02}{:02}{:02}{:02}{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                       tm.tm_min, tm.tm_sec);
}

}  // namespace

core::Result<std::string> compose_notice(const NoticeRequest& r, const Message& original) {
    if (auto ok = check_request(r); !ok) return core::unexpected(ok.error());
    auto included = read_included(original, r.full_message_limit);
    if (!included) return core::unexpected(included.error());
    const std::string host = clean_host(r.reporting_host);
    const std::string human = human_part(r, host, *included);
    const std::string report = status_part(r, host);
    auto boundary = choose_boundary(r, host, {human, report, included->text});
    if (!boundary) return core::unexpected(boundary.error());

    const bool human_8bit = has_8bit(human);
    const bool included_8bit = has_8bit(included->text);
    const char* kind_word = r.kind == NoticeKind::failure ? "Undelivered" : "Delayed";
    std::string out;
    out.reserve(human.size() + report.size() + included->text.size() + 2048);
    out += "Date: " + rfc5322_date(r.now) + "\n";
    out += folded_field("From", "MAILER-DAEMON@" + host + " (Mail Delivery System)");
    out += folded_field("To", without_controls(r.original_sender));
    out += r.kind == NoticeKind::failure ? "Subject: Undelivered Mail Returned to Sender\n"
                                         : "Subject: Delayed Mail (still being retried)\n";
    out += fmt::format("Message-ID: <{}.{}@{}>\n", message_id_stamp(r.now), r.notice_queue_id, host);
    out += "Auto-Submitted: auto-replied\n";
    out += "MIME-Version: 1.0\n";
    out += fmt::format("Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{}\"\n", *boundary);
    out += fmt::format("Content-Transfer-Encoding: {}\n\n", human_8bit || included_8bit ? "8bit" : "7bit");
    out += "This is a delivery status notification in MIME format (RFC 3464).\n\n";

    out += fmt::format("--{}\nContent-Description: Notification\n", *boundary);
    out += human_8bit ? "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                      : "Content-Type: text/plain; charset=us-ascii\n\n";
    out += human;

    out += fmt::format("--{}\nContent-Description: Delivery report\n", *boundary);
    out += "Content-Type: message/delivery-status\n\n";
    out += report + "\n";

    out += fmt::format("--{}\nContent-Description: {} message{}\n", *boundary, kind_word,
                       included->whole ? "" : " headers");
    out += included->whole ? "Content-Type: message/rfc822\n" : "Content-Type: text/rfc822-headers\n";
    out += fmt::format("Content-Transfer-Encoding: {}\n\n", included_8bit ? "8bit" : "7bit");
    out += included->text;
    out += fmt::format("\n--{}--\n", *boundary);
    return out;
}

}  // namespace mailroom::mail
