// Shared by the submission tests: a fixed time zone for exact Date: lines.
#pragma once

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>

namespace mailroom::test {

// Sets TZ for the life of the guard and restores it after, so that other tests of the
// binary see the zone they started with.
class TimeZoneGuard {
public:
    explicit TimeZoneGuard(const char* tz) {
        if (const char* old = std::getenv("TZ")) old_ = old;
        ::setenv("TZ", tz, 1);
        ::tzset();
    }
    ~TimeZoneGuard() {
        if (old_) ::setenv("TZ", old_->c_str(), 1);
        else ::unsetenv("TZ");
        ::tzset();
    }
    TimeZoneGuard(const TimeZoneGuard&) = delete;
    TimeZoneGuard& operator=(const TimeZoneGuard&) = delete;

private:
    std::optional<std::string> old_;
};

}  // namespace mailroom::test
