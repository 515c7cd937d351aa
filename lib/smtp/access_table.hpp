// AccessTable: smtpd_access_file (SPEC 7, docs/access.md), the administrator's rules
// for SMTP clients. Reads and matches only: the caller answers (REJECT 554 5.7.1,
// DEFER 450 4.7.1, OK for a client skips the relay check) and words a default text.
//
//   # comment                         a line whose first non-blank byte is '#'
//   KIND PATTERN ACTION [TEXT]        fields split at spaces and tabs
//
// KIND is client, helo, sender or recipient; ACTION is OK, REJECT or DEFER (both
// without regard to case); TEXT is the rest of the line, trimmed.
//   client     an address or CIDR (client_networks.hpp), or a host name: `example.com`
//              matches the client name example.com and any name ending in .example.com;
//              `.example.com` only the latter. A client without a name ("unknown")
//              matches no name pattern.
//   helo       a host name as for client, or an address literal `[192.0.2.1]`,
//              `[IPv6:2001:db8::1]`, matched as that one address.
//   sender     `user@domain`, `@domain` (exactly that domain), `@.domain` (its
//   recipient  subdomains), `user@` (at any domain); a sender pattern `<>` is the null
//              sender. No recipient_delimiter: `bob+x@a` is not `bob@a`.
// Names, local parts and domains match without regard to ASCII case.
//
// Invariants: one bad line rejects the whole file (a listener never runs on half its
// rules); every error is one input error `NAME:LINE: what`; a TEXT, when given, is 1
// to 200 printable ASCII octets (it goes into an SMTP reply line as is); for each kind the
// lines keep file order, and the first that matches decides.
// Must never: read more than max_file_bytes, accept a NUL, CR or control byte other
// than tab on any line (a CR before the LF excepted), or resolve a name (the caller passes the
// client's verified name, or "unknown").
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace mailroom::smtp {

enum class AccessKind { client, helo, sender, recipient };
enum class AccessAction { ok, reject, defer };

struct AccessDecision {
    AccessAction action;
    std::string text;   // the TEXT given, or "" (the caller words a default)
    size_t line = 0;    // where it was decided, for the log
};

class AccessTable {
public:
    static constexpr size_t max_file_bytes = 4u << 20;
    static constexpr size_t max_line_bytes = 4096;  // without the line end
    static constexpr size_t max_text_bytes = 200;

    // An empty table (smtpd_access_file unset): nothing matches.
    AccessTable();
    ~AccessTable();
    AccessTable(AccessTable&&) noexcept;
    AccessTable& operator=(AccessTable&&) noexcept;
    AccessTable(const AccessTable&);
    AccessTable& operator=(const AccessTable&);

    // Reads the file (at most 4 MiB; refuse a bigger one). Errors name "PATH:LINE: what";
    // one that opening or reading gives is an errno error ("open PATH: ...").
    static core::Result<AccessTable> load(const std::string& path);
    // The same from text; `name` stands for the path in messages.
    static core::Result<AccessTable> parse(std::string_view text, std::string_view name);

    // Each: the first matching line of that kind, in file order; nullopt when none matches.
    // address: as inet_ntop writes it; name: the client's verified name or "unknown".
    std::optional<AccessDecision> client(std::string_view address, std::string_view name) const;
    // helo: HELO/EHLO's argument as sent.
    std::optional<AccessDecision> helo(std::string_view helo) const;
    // The path without its angle brackets: "" = the null sender.
    std::optional<AccessDecision> sender(std::string_view address) const;
    std::optional<AccessDecision> recipient(std::string_view address) const;
    // Rule lines, all kinds (comments and blank lines not counted).
    size_t size() const;

private:
    struct Rule;  // access_table.cpp
    std::vector<Rule> client_, helo_, sender_, recipient_;
};

// "client", "OK" ...: for log lines.
std::string_view access_kind_name(AccessKind kind);
std::string_view access_action_name(AccessAction action);

}  // namespace mailroom::smtp
