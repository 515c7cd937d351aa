// Result<T>: a value or an Error, with std::expected's member names so that moving
// to <expected> later is a one-line alias. Used for *system* failures (a syscall
// that failed, with what it was doing); mail outcomes are mail::Status instead.
// Never throws: value() on an error, or error() on a value, is a bug and aborts
// with a message in every build (an assert would vanish from the release build and
// let the caller read a value that is not there).
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
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

// The misuse report: one line on stderr, then abort() (SIGABRT, a core for the
// developer). `error` is the error that value() was asked to ignore, or null.
[[noreturn]] inline void result_misuse(const char* what, const Error* error) {
    std::fprintf(stderr, "mailroom: bug: %s%s%s\n", what, error ? ": " : "",
                 error ? error->message().c_str() : "");
    std::abort();
}

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

    T& value() & { check_value(); return *std::get_if<0>(&state_); }
    const T& value() const& { check_value(); return *std::get_if<0>(&state_); }
    T&& value() && { check_value(); return std::move(*std::get_if<0>(&state_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const {
        if (has_value()) result_misuse("Result::error() called on a value", nullptr);
        return *std::get_if<1>(&state_);
    }

private:
    void check_value() const {
        if (!has_value())
            result_misuse("Result::value() called on an error", std::get_if<1>(&state_));
    }

    std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Unexpected u) : error_(std::move(u.error)), failed_(true) {}

    bool has_value() const { return !failed_; }
    explicit operator bool() const { return has_value(); }
    void value() const {
        if (failed_) result_misuse("Result::value() called on an error", &error_);
    }
    const Error& error() const {
        if (!failed_) result_misuse("Result::error() called on a value", nullptr);
        return error_;
    }

private:
    Error error_;
    bool failed_ = false;
};

}  // namespace mailroom::core
