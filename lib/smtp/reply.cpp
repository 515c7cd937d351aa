#include "smtp/reply.hpp"

#include <fmt/format.h>

namespace mailroom::smtp {

std::string reply_text(std::string_view text, size_t limit) {
    std::string safe;
    safe.reserve(std::min(text.size(), limit));
    for (char c : text.substr(0, limit)) {
        auto byte = static_cast<unsigned char>(c);
        safe.push_back(byte < 0x20 || byte == 0x7f ? '?' : c);
    }
    return safe;
}

void append_reply(std::string& out, int code, std::string_view enhanced, std::string_view text) {
    if (enhanced.empty()) {
        out += fmt::format("{} {}\r\n", code, reply_text(text));
    } else {
        out += fmt::format("{} {} {}\r\n", code, enhanced, reply_text(text));
    }
}

void append_reply(std::string& out, const mail::Status& status) {
    append_reply(out, status.to_reply_code(), status.code(), status.text());
}

void append_multiline_reply(std::string& out, int code, const std::vector<std::string>& lines) {
    for (size_t i = 0; i < lines.size(); ++i) {
        out += fmt::format("{}{}{}\r\n", code, i + 1 == lines.size() ? ' ' : '-', reply_text(lines[i]));
    }
}

}  // namespace mailroom::smtp
