// SubmissionFilter: turns what a user piped into `sendmail` into the message that is
// queued (SPEC 1, "sendmail"), streaming, in any chunking.
//
// What it does to the input, and nothing else:
// - CR LF becomes LF (Postfix's sendmail_fix_line_endings = always); a CR that is not
//   before a LF stays. Every other byte passes unchanged: 8-bit bytes, NULs, header
//   lines of any length. The body is never changed; there is no dot-unstuffing.
// - Unless -i/-oi, a line holding only "." (also ".\r\n", and a last "." without LF)
//   ends the message; the rest of the input is ignored.
// - The output is: `Received:` (always), the header section as given (with -t, less
//   its Bcc: and Resent-Bcc: fields and their continuation lines), the missing ones of
//   From:, Date:, Message-ID: (submission_headers.hpp), then the rest as given.
// - The header section is the run of header fields (name, optional white space, ':')
//   and their continuation lines at the start. When something else ends it (a message
//   with no header at all: "hello", or headers then a non-header line) an empty line
//   goes after the added headers, so the first body line stays in the body. When an
//   empty line ends it, that line is the separator and nothing is added; so an empty
//   first line means "no headers", and the body after it is kept as it is.
// - A last header line without LF (the input ended inside the header section) gets a LF,
//   since fields follow it; a last body line without LF is kept as it is.
// - Only the header section is held in memory, up to header_section_limit (1 MiB).
//   Past it, the held fields go out behind Received: and the added fields (which cannot
//   go after a field that is cut in two), and the rest passes as body with no further
//   header processing: no more Bcc removal, no more -t recipients.
// Errors are sticky: after one, every call returns it, and nothing more reaches the sink.
// Must never: hold the body, call the sink once per byte, or queue a bad -t recipient.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace mailroom::mail {

struct SubmissionSettings {
    std::string myhostname;
    std::string login;      // submitter's login name, for a generated From: and Received:
    uid_t uid = 0;          // for "Received: by HOST (mailroom, from userid UID)"
    std::string full_name;  // -F, else GECOS full name, may be empty
    std::string queue_id;   // already chosen by the spool before the content is written
    std::time_t now = 0;    // for Date:, Received:, Message-ID:
    bool recipients_from_headers = false;  // -t
    bool dot_ends_message = true;          // neither -i nor -oi
    uint64_t size_limit = 0;  // message_size_limit (0 = none): past it, an error with errno EFBIG
};

// Receives the output in chunks of up to 64 KiB, in order.
using ContentSink = std::function<core::Result<void>(std::string_view)>;

class SubmissionFilter {
public:
    static constexpr size_t header_section_limit = 1024 * 1024;

    SubmissionFilter(SubmissionSettings settings, ContentSink sink);

    // Bytes as read from stdin. Ignored once the "." line was seen.
    core::Result<void> feed(std::string_view input);
    // End of input: writes what is held and gives the rest to the sink.
    core::Result<void> finish();

    bool ended_by_dot() const { return ended_by_dot_; }
    // -t: the recipients of To:, Cc:, Bcc: (or of Resent-To:, Resent-Cc:, Resent-Bcc:
    // when any Resent- field exists), in order, duplicates kept, each an addr-spec text that
    // Address::parse(.., ParseMode::bare) accepts. Filled when the header section ends;
    // a list or address that does not parse is an input error (the caller exits 65)
    // naming the field and the address, returned by that call (feed or finish) and all later.
    const std::vector<std::string>& header_recipients() const { return recipients_; }
    // Bytes given to the sink so far.
    uint64_t size() const { return sink_bytes_; }
    // The Message-ID value (given or generated) once the header section has ended.
    const std::string& message_id() const { return message_id_; }

private:
    // Line-end and dot state of the input (before CR LF → LF).
    enum class LineState { start, dot, dot_cr, middle, cr };
    // What the current line of the header section is, as far as seen.
    enum class LineKind { undecided, field, continuation, empty, other };

    void normalize(std::string_view input);
    void end_of_input();
    void forward(std::string_view normalized);
    void hold_header(std::string_view& normalized);
    void classify_line();
    void end_header_section(bool add_separator);
    void overflow_header_section();
    void write_headers(std::string_view section, bool added_first);
    void collect_recipients(std::string_view section);
    void emit(std::string_view bytes);
    void flush();
    core::Result<void> status() const;

    SubmissionSettings settings_;
    ContentSink sink_;
    LineState line_state_ = LineState::start;
    bool in_header_ = true;
    bool ended_by_dot_ = false;
    std::string message_id_;
    bool input_ended_ = false;

    std::string header_;      // the header section held so far (after CR LF → LF)
    size_t line_start_ = 0;   // where the current line starts in header_
    size_t class_pos_ = 0;    // classify_line() has looked at header_ up to here
    LineKind line_kind_ = LineKind::undecided;
    bool space_after_name_ = false;
    bool seen_field_ = false;

    std::string out_;  // output not yet given to the sink (< 64 KiB)
    uint64_t produced_ = 0;
    uint64_t sink_bytes_ = 0;
    std::optional<core::Error> error_;
    std::vector<std::string> recipients_;
};

}  // namespace mailroom::mail
