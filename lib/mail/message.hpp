// Message: one message read once from its input (stdin of mda, later an LMTP
// DATA stream) and made ready for any number of local deliveries.
//
// Invariants: line ends are LF (CRLF and lone CR-LF pairs become LF, a bare CR
// stays as it is); a leading "From " line (mbox envelope) is removed and its
// sender kept; the content is held in memory up to a small bound and spilled to
// an unlinked temporary file beyond it, so memory does not grow with message
// size; Delivered-To header values are recorded for mail-loop detection.
// The content is never changed otherwise (no header rewriting, no escaping:
// mbox escaping is MboxWriter's job).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/unique_fd.hpp"

namespace mailroom::mail {

struct MessageOptions {
    // Where the spill file goes (opened O_TMPFILE, or created and unlinked at once).
    std::string tmp_dir = "/tmp";
    // Content up to this size stays in memory.
    size_t memory_limit = 256 * 1024;
    // Larger content is refused with EMSGSIZE (0: no limit). Not EFBIG: that is what a
    // write past the caller's RLIMIT_FSIZE returns, a temporary failure, not the message's.
    uint64_t size_limit = 0;
    // Remove and parse a leading "From sender date" line.
    bool strip_from_line = true;
};

class Message {
public:
    static core::Result<Message> read_from(int fd, const MessageOptions& options);
    static core::Result<Message> from_string(std::string_view text, const MessageOptions& options);
    // A message already stored, normalised, in bytes [offset, offset+size) of a file
    // (a queue entry): read from there, never copied. Only its header is scanned.
    static core::Result<Message> from_stored(core::UniqueFd fd, uint64_t offset, uint64_t size);

    // Sequential reading of the normalised content, from the start each time.
    class Reader {
    public:
        // Fills up to size bytes; returns 0 at the end.
        core::Result<size_t> read(char* buf, size_t size);

    private:
        friend class Message;
        explicit Reader(const Message& message) : message_(message) {}
        const Message& message_;
        uint64_t offset_ = 0;
    };
    Reader reader() const { return Reader(*this); }

    uint64_t size() const { return size_; }
    // The sender of a removed leading "From " line ("" for "From <>" or MAILER-DAEMON style
    // null), or nothing when there was no such line.
    const std::optional<std::string>& from_line_sender() const { return from_line_sender_; }
    // True when a Delivered-To header carries this address (case-insensitive).
    bool has_delivered_to(std::string_view address) const;
    // True when the content is empty or its last byte is a LF.
    bool ends_with_newline() const { return ends_with_newline_; }

    Message(Message&&) = default;
    Message& operator=(Message&&) = default;

private:
    Message() = default;
    class Builder;

    std::string memory_;
    core::UniqueFd spill_;
    uint64_t spill_offset_ = 0;  // where the content starts in spill_
    uint64_t size_ = 0;
    std::optional<std::string> from_line_sender_;
    std::vector<std::string> delivered_to_;
    bool ends_with_newline_ = true;
};

}  // namespace mailroom::mail
