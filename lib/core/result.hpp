// Result<T>: a value or an Error, with std::expected's member names so that moving
// to <expected> later is a one-line alias. Used for *system* failures (a syscall
// that failed, with what it was doing); mail outcomes are mail::Status instead.
// Never throws: value() on an error is a bug and asserts.
#pragma once

#include <cassert>
#include <cerrno>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace mailroom::core {

// What went wrong and where: an errno-style code plus the operation and object
// ("open /var/mail/bob"), so the line reported at the top needs no further context.
// Bad *input* (an address, a config line) has no errno: it carries no code and its
// whole text in context (see input_error), and message() is then just that text.
struct Error {
    std::error_code code;
    std::string context;

    int errno_value() const { return code.category() == std::generic_category() ||
                                     code.category() == std::system_category()
                                         ? code.value() : 0; }
    // An empty code means the context is already the whole text (a parse error such
    // as "FILE:LINE: unknown key 'foo'"): there is no errno to append.
    std::string message() const {
        if (!code) return context;
        return context.empty() ? code.message() : context + ": " + code.message();
    }
};

inline Error errno_error(std::string context, int err = errno) {
    return Error{std::error_code(err, std::system_category()), std::move(context)};
}

// An input error: message() is exactly `text` ("local part longer than 64 octets").
// Map it to a Status with a helper that knows the input (e.g. bad_address_status),
// not with Status::from_error, which treats errors as temporary system failures.
inline Error input_error(std::string text) { return Error{std::error_code(), std::move(text)}; }

struct Unexpected {
    Error error;
};
inline Unexpected unexpected(Error e) { return Unexpected{std::move(e)}; }
inline Unexpected unexpected_input(std::string text) {
    return Unexpected{input_error(std::move(text))};
}
inline Unexpected unexpected_errno(std::string context, int err = errno) {
    return Unexpected{errno_error(std::move(context), err)};
}

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Result(Unexpected u) : state_(std::in_place_index<1>, std::move(u.error)) {}

    bool has_value() const { return state_.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() & { assert(has_value()); return std::get<0>(state_); }
    const T& value() const& { assert(has_value()); return std::get<0>(state_); }
    T&& value() && { assert(has_value()); return std::move(std::get<0>(state_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const { assert(!has_value()); return std::get<1>(state_); }

private:
    std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Unexpected u) : error_(std::move(u.error)), failed_(true) {}

    bool has_value() const { return !failed_; }
    explicit operator bool() const { return has_value(); }
    void value() const { assert(has_value()); }
    const Error& error() const { assert(failed_); return error_; }

private:
    Error error_;
    bool failed_ = false;
};

}  // namespace mailroom::core
