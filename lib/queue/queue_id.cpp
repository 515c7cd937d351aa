#include "queue/queue_id.hpp"

#include <sys/time.h>
#include <unistd.h>

namespace mailroom::mail {

namespace {

constexpr std::string_view alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr size_t time_digits = 9;  // 62^9 microseconds: until the year 2398
constexpr size_t pid_digits = 4;   // 62^4 > Linux's pid_max limit of 2^22
constexpr size_t counter_digits = 2;
constexpr size_t id_length = time_digits + pid_digits + counter_digits;

void append_base62(std::string& out, uint64_t value, size_t digits) {
    std::string part(digits, '0');
    for (size_t i = digits; i-- > 0;) {
        part[i] = alphabet[value % 62];
        value /= 62;
    }
    out += part;
}

int digit_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
    if (c >= 'a' && c <= 'z') return c - 'a' + 36;
    return -1;
}

}  // namespace

std::string QueueIdGenerator::next(uint64_t micros, pid_t pid) {
    std::string id;
    id.reserve(id_length);
    append_base62(id, micros, time_digits);
    append_base62(id, static_cast<uint64_t>(pid), pid_digits);
    append_base62(id, counter_++ % (62 * 62), counter_digits);
    return id;
}

std::string QueueIdGenerator::next() {
    struct timeval now {};
    ::gettimeofday(&now, nullptr);
    uint64_t micros = static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_usec);
    return next(micros, ::getpid());
}

bool is_valid_queue_id(std::string_view id) {
    if (id.size() != id_length) return false;
    for (char c : id) {
        if (digit_value(c) < 0) return false;
    }
    return true;
}

uint64_t queue_id_micros(std::string_view id) {
    if (!is_valid_queue_id(id)) return 0;
    uint64_t value = 0;
    for (size_t i = 0; i < time_digits; ++i) value = value * 62 + static_cast<uint64_t>(digit_value(id[i]));
    return value;
}

}  // namespace mailroom::mail
