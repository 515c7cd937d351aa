// JSON text for the --json outputs of mailq and mailctl trace: a string literal
// that any JSON reader takes, whatever bytes the text held.
#pragma once

#include <string>
#include <string_view>

namespace mailroom::core {

// A JSON string literal with its quotes; control bytes escaped, invalid UTF-8
// bytes become \ufffd.
std::string json_quote(std::string_view text);

}  // namespace mailroom::core
