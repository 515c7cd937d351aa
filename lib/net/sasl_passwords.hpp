// SaslPasswords: smtp_sasl_password_file (SPEC 2), the logins the SMTP client gives
// the relayhost with AUTH. The file holds lines
//
//   # comment                                 a line whose first non-blank byte is '#'
//   [smtp.example.com]:587   user:secret       HOST, white space, USER:PASSWORD
//   smtp.example.com         user@example.com:pa:ss word
//
// HOST is written as relayhost is (remote_route.hpp: "host", "host:port", "[host]",
// "[host]:port") and checked as such. USER:PASSWORD is the rest of the line, trimmed:
// USER ends at its first ':', so a password may hold ':' (and inner spaces); neither
// may be empty. Postfix's lookup order: the relayhost exactly as written, then its
// bare host name; HOST without regard to ASCII case (Postfix's hash tables fold it).
//
// Invariants: one bad line rejects the whole file (AUTH is never tried with half the
// logins); every error is one input error "NAME:LINE: what" that never quotes a user
// or a password (it goes to the log); a HOST appears once. load() refuses a file
// that every user may read or write (it holds passwords: mode 0600 or 0640 as Postfix
// advises), one that is not a regular file, and one over max_file_bytes.
// Must never: log, print or put in an error the USER:PASSWORD part of a line.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "net/remote_route.hpp"

namespace mailroom::net {

class SaslPasswords {
public:
    static constexpr size_t max_file_bytes = 1u << 20;
    static constexpr size_t max_line_bytes = 4096;  // without the line end

    // No logins (smtp_sasl_password_file unset): find() finds nothing.
    SaslPasswords() = default;

    // Reads the file; errors "PATH:LINE: what", "PATH: what", or an errno error from
    // opening or reading it ("open PATH: ...").
    static core::Result<SaslPasswords> load(const std::string& path);
    // The same from text; `name` stands for the path in messages.
    static core::Result<SaslPasswords> parse(std::string_view text, std::string_view name);

    struct Login {
        std::string user, password;
    };
    // The login for this relayhost: the line for relayhost.written(), else the one for
    // relayhost.host; nothing when neither is in the file.
    std::optional<Login> find(const Relayhost& relayhost) const;
    size_t size() const { return logins_.size(); }

private:
    struct Entry {
        Login login;
        size_t line = 0;
    };
    std::map<std::string, Entry> logins_;  // by HOST, lower-cased
};

}  // namespace mailroom::net
