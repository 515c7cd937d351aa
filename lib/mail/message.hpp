// Message: one message read once from its input (stdin of mda, later an LMTP
// DATA stream) and made ready for any number of local deliveries.
//
// Invariants: line ends are LF (CRLF and lone CR-LF pairs become LF, a bare CR
// stays as it is); a leading "From " line (mbox envelope) is removed and its
// sender kept; the content is held in memory up to a small bound and spilled to
// an unlinked temporary file beyond it, so memory does not grow with message
// size; Delivered-To header values are recorded for mail-loop detection.
// The content is never changed otherwise (no escaping: mbox escaping is
// MboxWriter's job); a delivery reads it through a Reader that leaves out the
// header fields the delivery agent owns (OwnedFields), the stored bytes stay.
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

// Header fields that the delivery agent writes, or that mailbox readers trust,
// and so are dropped from a message's header section on delivery (SPEC section
// 4, as Postfix's cleanup drops them): a second Return-Path: would sit beside the
// real one, and a forged Content-Length: makes formail and mutt read the next
// message of an mbox as part of this one.
enum class OwnedFields {
    none,         // the content as stored (bounces quoting the original)
    return_path,  // Maildir: Return-Path:
    mbox,         // mbox: Return-Path:, Content-Length:, Content-Lines:
};

// Streams a message's content while leaving out the header fields of `owned`,
// each with its continuation lines. Only the header section (up to the first
// empty line) is looked at, never the body; field names are matched without
// regard to case, with white space allowed before the colon. Memory is bounded:
// at most the start of one line is held back while its name is decided.
class HeaderFilter {
public:
    explicit HeaderFilter(OwnedFields owned) : owned_(owned), in_body_(owned == OwnedFields::none) {}
    // Appends to `out` what of `in` is kept.
    void feed(std::string_view in, std::string& out);
    // At the end of the content: a held-back line start (no colon yet) is kept.
    void finish(std::string& out);
    // True once the empty line that ends the header has passed: the rest is kept whole.
    bool in_body() const { return in_body_; }

private:
    enum class Line { start, name, kept, dropped };
    bool owned(std::string_view name) const;

    OwnedFields owned_;
    bool in_body_;
    Line line_ = Line::start;
    bool field_dropped_ = false;  // what a continuation line belongs to
    std::string name_;            // Line::name: the line so far, no colon yet
};

class Message {
public:
    static core::Result<Message> read_from(int fd, const MessageOptions& options);
    static core::Result<Message> from_string(std::string_view text, const MessageOptions& options);
    // A message already stored, normalised, in bytes [offset, offset+size) of a file
    // (a queue entry): read from there, never copied. Only its header is scanned.
    static core::Result<Message> from_stored(core::UniqueFd fd, uint64_t offset, uint64_t size);

    // Sequential reading of the normalised content, from the start each time,
    // without the header fields of `owned` (see OwnedFields).
    class Reader {
    public:
        // Fills up to size bytes; returns 0 at the end.
        core::Result<size_t> read(char* buf, size_t size);

    private:
        friend class Message;
        Reader(const Message& message, OwnedFields owned) : message_(message), filter_(owned) {}
        core::Result<size_t> read_stored(char* buf, size_t size);
        const Message& message_;
        uint64_t offset_ = 0;
        HeaderFilter filter_;
        std::string kept_;      // filtered bytes not yet returned
        size_t kept_used_ = 0;
    };
    Reader reader(OwnedFields owned = OwnedFields::none) const { return Reader(*this, owned); }

    uint64_t size() const { return size_; }
    // The size of what reader(owned) yields: size() less the dropped fields. Reads
    // the header section once.
    core::Result<uint64_t> size_without(OwnedFields owned) const;
    // The sender of a removed leading "From " line ("" for "From <>" or MAILER-DAEMON style
    // null), or nothing when there was no such line.
    const std::optional<std::string>& from_line_sender() const { return from_line_sender_; }
    // True when a Delivered-To header carries this address (case-insensitive).
    bool has_delivered_to(std::string_view address) const;
    // True when the content is empty or its last byte is a LF.
    bool ends_with_newline() const { return ends_with_newline_; }
    // The descriptor the content is read from (a spill file, a queue entry), or -1 when
    // it is held in memory: a forked delivery child that reads it must keep it open.
    int content_fd() const { return spill_.get(); }
    // Where the content starts in content_fd(): with size(), what from_stored needs to
    // read the same message in another process.
    uint64_t content_offset() const { return spill_offset_; }

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
