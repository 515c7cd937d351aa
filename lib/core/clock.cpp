#include "core/clock.hpp"

#include <sys/time.h>

namespace mailroom::core {

uint64_t SystemClock::now_micros() const {
    struct timeval tv {};
    ::gettimeofday(&tv, nullptr);
    return static_cast<uint64_t>(tv.tv_sec) * 1'000'000 + static_cast<uint64_t>(tv.tv_usec);
}

}  // namespace mailroom::core
