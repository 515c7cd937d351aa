// Address: one RFC 5321 mailbox, parsed once at the door (SMTP/LMTP paths, sendmail
// and mda arguments) by a total parser. An Address that exists is valid: its local part
// is dot-string or quotable text, its domain is empty (a bare local name such as `bob`),
// a dot-separated host name or an address literal, and the RFC 5321 4.5.3.1 limits hold
// (local part <= 64 octets, domain <= 255, path <= 256). It never holds CR, LF, NUL or
// any other control character, nor 8-bit bytes unless parsed with SMTPUTF8 allowed (and
// then only valid UTF-8). Parsing never throws: bad input is a Result error whose
// message() is a short human text ("local part longer than 64 octets").
// An Address is only an address: it never means a file or a command (SPEC 5).
#pragma once

#include <string>
#include <string_view>

#include "core/result.hpp"
#include "mail/status.hpp"

namespace mailroom::mail {

enum class ParseMode {
    path,  // SMTP `<...>`: angle brackets required, source route accepted and dropped
    bare,  // argument or header text: `user@host`, `user`, optional `<>`, whitespace trimmed
};

struct ParseFlags {
    bool allow_null = false;      // `<>` (and, in bare mode, an empty text) is the null path
    bool allow_utf8 = false;      // SMTPUTF8: valid UTF-8 in local part and domain
    bool require_domain = false;  // reject a bare local name, except `postmaster` (RFC 5321 4.5.1)
};

class Address {
public:
    // The null path `<>`; useful as the default sender of an envelope.
    Address() = default;

    static core::Result<Address> parse(std::string_view text, ParseMode mode,
                                       ParseFlags flags = {});

    // Decoded: `"john doe"@x` gives `john doe`; `"a\"b"@x` gives `a"b`.
    const std::string& local_part() const { return local_; }
    // As given (case preserved); empty for a bare local name and for the null path.
    // An address literal keeps its brackets: `[192.0.2.1]`, `[IPv6:2001:db8::1]`.
    const std::string& domain() const { return domain_; }
    bool is_null() const { return null_; }
    bool has_domain() const { return !domain_.empty(); }
    bool has_address_literal() const { return !domain_.empty() && domain_.front() == '['; }
    // True when local part or domain holds 8-bit text: relaying it needs SMTPUTF8.
    bool needs_smtputf8() const;

    // Canonical `local@domain` (or `local`), the local part quoted only when needed;
    // empty for the null path.
    std::string str() const;
    // `<local@domain>`, `<>` for the null path: for MAIL FROM and Return-Path.
    std::string path() const { return "<" + str() + ">"; }

    // Domains compare without regard to ASCII case (RFC 5321 2.4); local parts exactly.
    bool iequal_domain(std::string_view other) const;
    std::string lowercase_domain() const;
    bool same_mailbox(const Address& other) const;

    // The local part as it must be written: unchanged when it is a dot-string, else a
    // quoted-string with `"` and `\` escaped. An empty local part renders as `""`.
    static std::string quote_local(std::string_view local);

private:
    Address(std::string local, std::string domain)
        : local_(std::move(local)), domain_(std::move(domain)), null_(false) {}

    std::string local_;
    std::string domain_;
    bool null_ = true;
};

// ASCII case-insensitive equality, as domains and alias names compare.
bool iequals_ascii(std::string_view a, std::string_view b);

// `user+ext` → {user, ext}, Postfix recipient_delimiter style: `delimiter` is a set of
// characters and the first of them found in `local` splits it. No split (extension
// empty) when `delimiter` is empty or no delimiter occurs, when the split would leave an
// empty user (`+foo`), for postmaster and MAILER-DAEMON, and, when `-` is a delimiter,
// for `owner-*` and `*-request` (mailing-list names).
struct LocalParts {
    std::string user, extension;
};
LocalParts split_extension(std::string_view local, std::string_view delimiter);

enum class AddressRole { recipient, sender };
// Bad address syntax as a mail outcome: permanent 5.1.3 for a recipient, 5.1.7 for a
// sender (RFC 3463); both reply 553 and exit 65 (EX_DATAERR) through Status's tables.
Status bad_address_status(const core::Error& error, AddressRole role = AddressRole::recipient);

}  // namespace mailroom::mail
