// RFC 5322 dates ("Sat, 21 Nov 2026 20:23:34 +0000", local time zone) for every
// header and report field mailroom writes: Date:, Received:, Arrival-Date...
#pragma once

#include <ctime>
#include <string>

namespace mailroom::mail {

std::string rfc5322_date(std::time_t when);

}  // namespace mailroom::mail
