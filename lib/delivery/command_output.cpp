#include "delivery/command_output.hpp"

#include <sysexits.h>

#include <cctype>

#include <fmt/format.h>

namespace mailroom::mail {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Digits from pos, 1 to 3 of them; returns the position after them, or npos.
size_t digits(std::string_view s, size_t pos) {
    size_t end = pos;
    while (end < s.size() && is_digit(s[end]) && end - pos < 4) ++end;
    return end == pos || end - pos > 3 ? std::string_view::npos : end;
}

// ": output" when there is any, for the texts below.
std::string with_output(const core::SubprocessResult& result) {
    std::string text = one_line(result.output);
    return text.empty() ? std::string() : ": " + text;
}

}  // namespace

std::string one_line(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool space = false;
    for (char c : text) {
        if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += c;
    }
    return out;
}

std::optional<Status> status_from_output(std::string_view output) {
    if (output.size() < 5 || (output[0] != '2' && output[0] != '4' && output[0] != '5') || output[1] != '.')
        return std::nullopt;
    size_t second = digits(output, 2);
    if (second == std::string_view::npos || second >= output.size() || output[second] != '.') return std::nullopt;
    size_t end = digits(output, second + 1);
    if (end == std::string_view::npos) return std::nullopt;
    if (end < output.size() && output[end] != ' ' && output[end] != '\t' && output[end] != '\n' &&
        output[end] != '\r')
        return std::nullopt;
    std::string code(output.substr(0, end));
    std::string text = one_line(output.substr(end));
    if (text.empty()) text = "(no text)";
    if (code[0] == '2') return Status::ok(std::move(text), std::move(code));
    if (code[0] == '4') return Status::temp(std::move(code), std::move(text));
    return Status::perm(std::move(code), std::move(text));
}

Status command_status(const core::SubprocessResult& result, std::string_view command_text,
                      std::chrono::seconds timeout) {
    const std::string command = one_line(command_text);
    if (result.timed_out)
        return Status::perm("5.3.0", fmt::format("command timed out after {} s{}", timeout.count(), with_output(result)));
    // A cut message must not count as delivered, whatever the command made of it.
    if (result.input_error)
        return Status::temp("4.3.0", fmt::format("cannot feed the message to command \"{}\": {}", command,
                                                 result.input_error->message()));
    if (auto announced = status_from_output(result.output)) return *announced;
    if (result.signal != 0)
        return Status::perm("5.3.0",
                            fmt::format("command \"{}\" killed by signal {}{}", command, result.signal, with_output(result)));
    if (result.exit_code == EX_OK) return Status::ok(fmt::format("delivered to command: {}", command));
    std::string text = fmt::format("command \"{}\" exited with status {}{}", command, result.exit_code, with_output(result));
    if (result.exit_code == EX_TEMPFAIL || result.exit_code == EX_OSERR) return Status::temp("4.3.0", std::move(text));
    return Status::perm("5.3.0", std::move(text));
}

}  // namespace mailroom::mail
