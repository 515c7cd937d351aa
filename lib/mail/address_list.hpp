// parse_address_list: the addresses of an RFC 5322 address-list (3.4), as To:, Cc: and
// Bcc: carry them, for `sendmail -t`. It finds where each address is; it does not judge
// the address itself: each result is an addr-spec text for Address::parse(.., bare).
//
// Understood: display names (atoms and quoted strings), angle addresses with an obsolete
// source route (`<@a,@b:x@y>`, the route dropped), comments (nested, anywhere), quoted
// local parts, domain literals, groups (`team: a@b, c@d;`, also without the final `;`),
// empty list elements (`a@b,,c@d`), folded text (LF and CR count as white space, as in
// an unfolded header), and CFWS around the dots and `@` of an addr-spec (RFC 5322 obs-*).
// Must never: guess. Text that cannot be split into addresses unambiguously (two words
// with no `,` between them, `<` without `>`, an unterminated quote or comment, a group
// inside a group) is an error naming the element, never a concatenated address.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace mailroom::mail {

struct ListedAddress {
    // CFWS removed, quoting kept: `john.doe@example.org`, `"john doe"@example.org`,
    // `bob`; empty for `<>`.
    std::string addr_spec;
    // The list element as written (trimmed, comments included), for error lines.
    std::string source;
};

// An error is an input error (no errno) whose message() says what is wrong and where:
// `unterminated quoted string in "\"bob <b@x>"`.
core::Result<std::vector<ListedAddress>> parse_address_list(std::string_view text);

}  // namespace mailroom::mail
