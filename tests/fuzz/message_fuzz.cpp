// Any bytes as a message: read with a tiny memory bound (so the spill file is used),
// the stored content is the input with each CR LF made LF (left to right: CR CR LF
// keeps one CR), its size is what the reader returns, and the mbox quoting of it,
// fed in odd chunks, undoes to the content exactly. Read without the fields the
// delivery agent owns, its size is size_without(), its body is untouched and its
// header section holds no Return-Path:, Content-Length: or Content-Lines: field.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "delivery/mbox_writer.hpp"
#include "mail/message.hpp"

using namespace mailroom::mail;

namespace {

std::string read_all(const Message& message, OwnedFields owned = OwnedFields::none) {
    std::string out;
    auto reader = message.reader(owned);
    char buf[333];
    for (;;) {
        auto n = reader.read(buf, sizeof buf);
        if (!n) std::abort();
        if (*n == 0) return out;
        out.append(buf, *n);
    }
}

// mboxrd: one '>' off every line that matches ^>+From .
std::string unquote(std::string_view quoted) {
    std::string out;
    size_t pos = 0;
    while (pos < quoted.size()) {
        size_t end = quoted.find('\n', pos);
        end = end == std::string_view::npos ? quoted.size() : end + 1;
        std::string_view line = quoted.substr(pos, end - pos);
        size_t arrows = line.find_first_not_of('>');
        if (arrows != std::string_view::npos && arrows > 0 && line.substr(arrows, 5) == "From ") {
            line.remove_prefix(1);
        }
        out.append(line);
        pos = end;
    }
    return out;
}

std::string crlf_to_lf(std::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
        out += text[i];
    }
    return out;
}

bool is_owned_field(std::string_view line) {
    for (std::string_view name : {"return-path", "content-length", "content-lines"}) {
        if (line.size() < name.size()) continue;
        bool same = true;
        for (size_t i = 0; i < name.size() && same; ++i) {
            char c = line[i] >= 'A' && line[i] <= 'Z' ? static_cast<char>(line[i] + ('a' - 'A')) : line[i];
            same = c == name[i];
        }
        if (!same) continue;
        size_t colon = line.find_first_not_of(" \t", name.size());
        if (colon != std::string_view::npos && line[colon] == ':') return true;
    }
    return false;
}

void check_owned_fields_left_out(const Message& message, const std::string& content) {
    std::string filtered = read_all(message, OwnedFields::mbox);
    auto size = message.size_without(OwnedFields::mbox);
    if (!size || *size != filtered.size()) std::abort();
    // The empty line that ends the header, and the body after it, are kept whole
    // (the empty line is the very first when the header section is empty).
    size_t body = content.rfind('\n', 0) == 0 ? 0 : content.find("\n\n");
    body = body == std::string::npos ? content.size() : body == 0 ? 0 : body + 1;
    std::string_view tail = std::string_view(content).substr(body);
    if (filtered.size() < tail.size() || filtered.compare(filtered.size() - tail.size(), tail.size(), tail) != 0)
        std::abort();
    std::string_view head = std::string_view(filtered).substr(0, filtered.size() - tail.size());
    for (size_t pos = 0; pos < head.size();) {
        size_t end = head.find('\n', pos);
        end = end == std::string_view::npos ? head.size() : end + 1;
        if (is_owned_field(head.substr(pos, end - pos))) std::abort();
        pos = end;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    MessageOptions options;
    options.memory_limit = 64;
    options.tmp_dir = "/tmp";
    options.strip_from_line = size % 2;
    auto message = Message::from_string(text, options);
    if (!message) std::abort();
    std::string content = read_all(*message);
    if (content.size() != message->size()) std::abort();
    if (!options.strip_from_line && content != crlf_to_lf(text)) std::abort();
    check_owned_fields_left_out(*message, content);

    MboxEscaper escaper;
    std::string quoted;
    size_t step = 1 + (size % 7);
    for (size_t pos = 0; pos < content.size(); pos += step) {
        escaper.feed(std::string_view(content).substr(pos, step), quoted);
    }
    escaper.finish(quoted);
    if (unquote(quoted) != content) std::abort();
    return 0;
}
