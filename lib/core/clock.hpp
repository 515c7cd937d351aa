// The time as policy reads it: retry schedules, expiry, delay warnings and the
// log's delays all ask a Clock passed in from main, so a test moves time forward
// instead of sleeping, and nothing below main calls time() behind its back.
// Invariant: now() is now_micros() / 1,000,000, rounded down.
#pragma once

#include <cstdint>
#include <ctime>

namespace mailroom::core {

class Clock {
public:
    virtual ~Clock() = default;
    // Microseconds since the epoch.
    virtual uint64_t now_micros() const = 0;

    std::time_t now() const { return static_cast<std::time_t>(now_micros() / 1'000'000); }
    double now_seconds() const { return static_cast<double>(now_micros()) / 1e6; }
};

// The real time of day (gettimeofday).
class SystemClock final : public Clock {
public:
    uint64_t now_micros() const override;
};

// A clock that stands still until told: for tests, and for replaying a run.
class FixedClock final : public Clock {
public:
    explicit FixedClock(std::time_t now) : micros_(static_cast<uint64_t>(now) * 1'000'000) {}
    uint64_t now_micros() const override { return micros_; }
    void set(std::time_t now) { micros_ = static_cast<uint64_t>(now) * 1'000'000; }
    void advance(std::time_t seconds) { micros_ += static_cast<uint64_t>(seconds) * 1'000'000; }

private:
    uint64_t micros_;
};

}  // namespace mailroom::core
