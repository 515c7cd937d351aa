#include "mail/mail_date.hpp"

#include <cstdio>
#include <cstdlib>

namespace mailroom::mail {

namespace {
constexpr const char* day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
}  // namespace

std::string rfc5322_date(std::time_t when) {
    std::tm tm{};
    if (::localtime_r(&when, &tm) == nullptr) {
        // Out of the representable range: the epoch is better than garbage.
        std::time_t epoch = 0;
        ::gmtime_r(&epoch, &tm);
    }
    const long offset = tm.tm_gmtoff;
    const long magnitude = std::labs(offset);
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld",
                  day_names[tm.tm_wday % 7], tm.tm_mday, month_names[tm.tm_mon % 12],
                  tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, offset < 0 ? '-' : '+',
                  magnitude / 3600, magnitude % 3600 / 60);
    return buf;
}

}  // namespace mailroom::mail
