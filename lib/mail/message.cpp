#include "mail/message.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/io.hpp"

namespace mailroom::mail {

namespace {

constexpr size_t chunk_size = 64 * 1024;
// Header lines longer than this are not examined for Delivered-To (they are still
// stored whole); a From_ line longer than this is still removed whole.
constexpr size_t header_scan_limit = 4096;
constexpr size_t delivered_to_limit = 256;
// A stored message's header is scanned for Delivered-To up to this many bytes.
constexpr uint64_t header_scan_bytes = 1024 * 1024;

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// "From alice@example.org Sat Nov 21 20:23:34 2026" → "alice@example.org";
// "From <>" or "From MAILER-DAEMON" → "" (the null sender).
std::string sender_of_from_line(std::string_view line) {
    line.remove_prefix(5);
    line = trim(line);
    auto end = line.find_first_of(" \t");
    std::string_view sender = line.substr(0, end);
    if (sender.size() >= 2 && sender.front() == '<' && sender.back() == '>') {
        sender = sender.substr(1, sender.size() - 2);
    }
    if (sender == "MAILER-DAEMON") return {};
    return std::string(sender);
}

core::Result<core::UniqueFd> open_spill_file(const std::string& dir) {
    // O_TMPFILE: the file has no name, so a crash leaves nothing behind.
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return core::UniqueFd(fd);
    std::string path = dir + "/mailroom-msg.XXXXXX";
    fd = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd < 0) return core::unexpected_errno("create temporary file in " + dir);
    ::unlink(path.c_str());
    return core::UniqueFd(fd);
}

}  // namespace

// Turns raw input into the stored content: CRLF → LF, the From_ line removed,
// Delivered-To values collected, memory spilled to a file past the bound.
class Message::Builder {
public:
    Builder(Message& message, const MessageOptions& options)
        : message_(message), options_(options) {
        first_line_ = options.strip_from_line;
    }

    core::Result<void> feed(std::string_view data) {
        if (pending_cr_ && !data.empty()) {
            pending_cr_ = false;
            if (data.front() == '\n') {
                if (auto r = accept("\n"); !r) return r;
                data.remove_prefix(1);
            } else if (auto r = accept("\r"); !r) {
                return r;
            }
        }
        while (!data.empty()) {
            auto cr = data.find('\r');
            if (cr == std::string_view::npos) return accept(data);
            if (auto r = accept(data.substr(0, cr)); !r) return r;
            if (cr + 1 == data.size()) {
                pending_cr_ = true;
                return {};
            }
            if (data[cr + 1] == '\n') {
                if (auto r = accept("\n"); !r) return r;
                data.remove_prefix(cr + 2);
            } else {
                if (auto r = accept("\r"); !r) return r;
                data.remove_prefix(cr + 1);
            }
        }
        return {};
    }

    bool header_done() const { return !in_headers_; }

    core::Result<void> finish() {
        if (pending_cr_) {
            pending_cr_ = false;
            if (auto r = accept("\r"); !r) return r;
        }
        if (first_line_) {
            // Input ended inside its first line.
            if (auto r = end_first_line(); !r) return r;
        }
        if (in_headers_ && !header_line_.empty()) scan_header_line();
        if (message_.spill_ && !buffer_.empty()) {
            if (auto r = core::write_all(message_.spill_.get(), buffer_, "temporary file"); !r) return r;
            buffer_.clear();
        }
        if (!message_.spill_) message_.memory_ = std::move(buffer_);
        return {};
    }

private:
    core::Result<void> accept(std::string_view data) {
        if (first_line_) {
            auto nl = data.find('\n');
            first_.append(data.substr(0, std::min(nl, data.size())));
            if (first_.size() > header_scan_limit && first_.compare(0, 5, "From ") != 0) {
                // Too long to be an envelope line: plain content.
                if (auto r = end_first_line(); !r) return r;
                return accept(data.substr(std::min(nl, data.size())));
            }
            if (first_.size() > header_scan_limit) first_.resize(header_scan_limit);
            if (nl == std::string_view::npos) return {};
            first_ += '\n';
            if (auto r = end_first_line(); !r) return r;
            return accept(data.substr(nl + 1));
        }
        return store(data);
    }

    core::Result<void> end_first_line() {
        first_line_ = false;
        if (first_.compare(0, 5, "From ") == 0) {
            message_.from_line_sender_ = sender_of_from_line(first_);
            first_.clear();
            return {};
        }
        std::string line = std::move(first_);
        return store(line);
    }

    core::Result<void> store(std::string_view data) {
        if (data.empty()) return {};
        if (in_headers_) scan_headers(data);
        message_.size_ += data.size();
        if (options_.size_limit && message_.size_ > options_.size_limit) {
            return core::unexpected_errno("message larger than the size limit", EMSGSIZE);
        }
        message_.ends_with_newline_ = data.back() == '\n';
        buffer_.append(data);
        if (!message_.spill_ && buffer_.size() > options_.memory_limit) {
            auto fd = open_spill_file(options_.tmp_dir);
            if (!fd) return core::unexpected(fd.error());
            message_.spill_ = std::move(*fd);
        }
        if (message_.spill_ && buffer_.size() >= chunk_size) {
            if (auto r = core::write_all(message_.spill_.get(), buffer_, "temporary file"); !r) return r;
            buffer_.clear();
        }
        return {};
    }

    void scan_headers(std::string_view data) {
        while (in_headers_ && !data.empty()) {
            auto nl = data.find('\n');
            std::string_view part = data.substr(0, nl);
            if (header_line_.size() < header_scan_limit) {
                header_line_.append(part.substr(0, header_scan_limit - header_line_.size()));
            }
            if (nl == std::string_view::npos) return;
            end_header_line();
            data.remove_prefix(nl + 1);
        }
    }

    void end_header_line() {
        if (header_line_.empty()) {
            in_headers_ = false;  // the empty line that ends the header
            return;
        }
        scan_header_line();
        header_line_.clear();
    }

    void scan_header_line() {
        constexpr std::string_view name = "delivered-to:";
        if (header_line_.size() > name.size() &&
            lowercase(std::string_view(header_line_).substr(0, name.size())) == name &&
            message_.delivered_to_.size() < delivered_to_limit) {
            auto value = trim(std::string_view(header_line_).substr(name.size()));
            message_.delivered_to_.push_back(lowercase(value));
        }
    }

    Message& message_;
    const MessageOptions& options_;
    std::string buffer_;
    std::string first_;
    std::string header_line_;
    bool first_line_ = false;
    bool pending_cr_ = false;
    bool in_headers_ = true;
};

core::Result<Message> Message::read_from(int fd, const MessageOptions& options) {
    Message message;
    Builder builder(message, options);
    std::string chunk(chunk_size, '\0');
    for (;;) {
        auto n = core::read_some(fd, chunk.data(), chunk.size(), "message input");
        if (!n) return core::unexpected(n.error());
        if (*n == 0) break;
        if (auto r = builder.feed(std::string_view(chunk.data(), *n)); !r) return core::unexpected(r.error());
    }
    if (auto r = builder.finish(); !r) return core::unexpected(r.error());
    return message;
}

core::Result<Message> Message::from_string(std::string_view text, const MessageOptions& options) {
    Message message;
    Builder builder(message, options);
    if (auto r = builder.feed(text); !r) return core::unexpected(r.error());
    if (auto r = builder.finish(); !r) return core::unexpected(r.error());
    return message;
}

core::Result<Message> Message::from_stored(core::UniqueFd fd, uint64_t offset, uint64_t size) {
    Message message;
    // Scanning through the Builder collects Delivered-To exactly as for fresh input;
    // the content itself stays where it is.
    MessageOptions options;
    options.strip_from_line = false;
    options.memory_limit = SIZE_MAX;  // the scan stops at the header's end, or at header_scan_bytes
    Message scanned;
    Builder builder(scanned, options);
    std::string chunk(chunk_size, '\0');
    uint64_t done = 0;
    while (done < size && scanned.size() < header_scan_bytes && !builder.header_done()) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), size - done));
        auto n = core::pread_full(fd.get(), chunk.data(), want, static_cast<off_t>(offset + done), "message file");
        if (!n) return core::unexpected(n.error());
        if (*n == 0) return core::unexpected_errno("message file shorter than the message", EIO);
        if (auto r = builder.feed(std::string_view(chunk.data(), *n)); !r) return core::unexpected(r.error());
        done += *n;
    }
    message.delivered_to_ = std::move(scanned.delivered_to_);
    if (size > 0) {
        char last = 0;
        auto n = core::pread_full(fd.get(), &last, 1, static_cast<off_t>(offset + size - 1), "message file");
        if (!n) return core::unexpected(n.error());
        message.ends_with_newline_ = last == '\n';
    }
    message.spill_ = std::move(fd);
    message.spill_offset_ = offset;
    message.size_ = size;
    return message;
}

namespace {

// Longer than any owned field name: a line whose first this many bytes hold no
// colon is kept without further look, so nothing bigger is ever held back.
constexpr size_t owned_name_limit = 64;

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && lowercase(a) == b;
}

}  // namespace

bool HeaderFilter::owned(std::string_view name) const {
    // "Return-Path :" (white space before the colon, RFC 5322's obsolete syntax)
    // is the same field to a lenient reader.
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (iequals(name, "return-path")) return true;
    return owned_ == OwnedFields::mbox && (iequals(name, "content-length") || iequals(name, "content-lines"));
}

void HeaderFilter::feed(std::string_view in, std::string& out) {
    size_t i = 0;
    while (i < in.size()) {
        if (in_body_) {
            out.append(in.substr(i));
            return;
        }
        switch (line_) {
            case Line::start:
                if (in[i] == '\n') {  // the empty line that ends the header
                    out += '\n';
                    in_body_ = true;
                    ++i;
                } else if (in[i] == ' ' || in[i] == '\t') {
                    line_ = field_dropped_ ? Line::dropped : Line::kept;  // a continuation line
                } else {
                    line_ = Line::name;
                }
                break;
            case Line::name: {
                size_t stop = std::min(in.find_first_of(":\n", i), in.size());
                size_t take = std::min(stop - i, owned_name_limit + 1 - name_.size());
                name_.append(in.substr(i, take));
                i += take;
                bool colon = i < in.size() && in[i] == ':';
                bool newline = i < in.size() && in[i] == '\n';
                if (colon || newline || name_.size() > owned_name_limit) {
                    // A field name is complete, or the line is no owned field: a line
                    // without a colon, or one whose name is longer than any owned one.
                    field_dropped_ = colon && owned(name_);
                    if (!field_dropped_) out += name_;
                    name_.clear();
                    line_ = field_dropped_ ? Line::dropped : Line::kept;
                }
                break;
            }
            case Line::kept:
            case Line::dropped: {
                size_t nl = in.find('\n', i);
                size_t end = nl == std::string_view::npos ? in.size() : nl + 1;
                if (line_ == Line::kept) out.append(in.substr(i, end - i));
                i = end;
                if (nl != std::string_view::npos) line_ = Line::start;
                break;
            }
        }
    }
}

void HeaderFilter::finish(std::string& out) {
    out += name_;  // the content ended inside a line with no colon: not a field
    name_.clear();
}

core::Result<size_t> Message::Reader::read(char* buf, size_t size) {
    if (size == 0) return size_t{0};
    while (kept_used_ == kept_.size()) {
        // Past the header, the content passes unchanged: no copy.
        if (filter_.in_body()) return read_stored(buf, size);
        kept_.clear();
        kept_used_ = 0;
        char raw[16 * 1024];
        auto n = read_stored(raw, sizeof raw);
        if (!n) return n;
        if (*n == 0) {
            filter_.finish(kept_);
            if (kept_.empty()) return size_t{0};
            break;
        }
        filter_.feed(std::string_view(raw, *n), kept_);
    }
    size_t n = std::min(size, kept_.size() - kept_used_);
    std::memcpy(buf, kept_.data() + kept_used_, n);
    kept_used_ += n;
    return n;
}

core::Result<uint64_t> Message::size_without(OwnedFields owned) const {
    if (owned == OwnedFields::none) return size_;
    HeaderFilter filter(owned);
    Reader stored = reader();
    uint64_t kept = 0;
    uint64_t consumed = 0;
    std::string out;
    char raw[16 * 1024];
    while (!filter.in_body()) {
        auto n = stored.read(raw, sizeof raw);
        if (!n) return core::unexpected(n.error());
        if (*n == 0) {
            out.clear();  // the last chunk's output is counted already
            filter.finish(out);
            return kept + out.size();
        }
        out.clear();
        filter.feed(std::string_view(raw, *n), out);
        kept += out.size();
        consumed += *n;
    }
    return kept + (size_ - consumed);
}

core::Result<size_t> Message::Reader::read_stored(char* buf, size_t size) {
    uint64_t left = message_.size_ - offset_;
    size_t want = static_cast<size_t>(std::min<uint64_t>(left, size));
    if (want == 0) return size_t{0};
    if (!message_.spill_) {
        std::memcpy(buf, message_.memory_.data() + offset_, want);
        offset_ += want;
        return want;
    }
    auto n = core::pread_full(message_.spill_.get(), buf, want,
                              static_cast<off_t>(message_.spill_offset_ + offset_), "message file");
    if (!n) return n;
    if (*n == 0) return core::unexpected_errno("temporary file shorter than the message", EIO);
    offset_ += *n;
    return *n;
}

bool Message::has_delivered_to(std::string_view address) const {
    std::string wanted = lowercase(address);
    return std::find(delivered_to_.begin(), delivered_to_.end(), wanted) != delivered_to_.end();
}

}  // namespace mailroom::mail
