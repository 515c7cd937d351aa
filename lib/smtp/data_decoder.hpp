// DataDecoder: the message text of a DATA or BDAT transaction, from the bytes a
// client sent to the form the spool and the mailbox writers keep (LF line ends),
// streaming, in any chunking, in the shape of mail::SubmissionFilter (feed, finish,
// a sticky error).
//
// DATA (Framing::dot): RFC 5321 4.1.1.4 and 4.5.2. The data ends at CRLF "." CRLF and
// nowhere else (the CRLF before the dot may be the one that ended the DATA command:
// an empty message). A line that starts with "." loses that dot. CRLF becomes LF.
// BDAT (Framing::chunks): RFC 3030. The session feeds exactly the chunk's bytes and
// calls finish() after the LAST chunk; no dot is special. CRLF becomes LF, also when
// the CR ends one chunk and the LF starts the next.
//
// A bare LF (not after CR) or a bare CR (not before LF) — the SMTP smuggling
// probes <LF>.<LF>, <CR>.<CR>, <LF>.<CRLF>, <CRLF>.<LF> and the rest — never ends the
// data. With BareNewline::reject it makes the message refused, 5.5.2; with
// BareNewline::normalize (smtpd_bare_newline) it is a line end like CRLF (it becomes
// LF, and a dot after it is unstuffed), still never part of an end of data.
// Text lines may be of any length: the decoder holds at most a few bytes of an
// unfinished line end, never a line. 8-bit bytes and NULs pass unchanged.
//
// Errors are sticky: after the first (a bare newline 5.5.2, the size limit 5.3.4, the
// sink's own failure) nothing more reaches the sink, but the input is still read to
// the end of the data, so that the client's next command is found where it begins.
// Must never: end DATA anywhere but at CRLF.CRLF, let a byte after the end reach the
// sink, or hold a whole line.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "mail/status.hpp"

namespace mailroom::smtp {

enum class BareNewline { reject, normalize };
enum class Framing { dot, chunks };

struct DataDecoderSettings {
    Framing framing = Framing::dot;
    BareNewline bare_newline = BareNewline::reject;
    // message_size_limit, counted on the output (after unstuffing and CRLF → LF);
    // 0 = none. Past it: 552 5.3.4 "message size exceeds fixed maximum message size".
    uint64_t size_limit = 0;
};

// Receives the decoded text in order, in pieces of any size (not one call per byte).
// An error it returns becomes the decoder's sticky error as it is.
using DataSink = std::function<core::Result<void>(std::string_view)>;

class DataDecoder {
public:
    DataDecoder(DataDecoderSettings settings, DataSink sink);

    // Framing::dot: consumes input up to and including the CRLF.CRLF that ends the
    // data, and returns how many bytes it consumed (all of `input` when the end is
    // not in it). Bytes after the end are the client's next commands: not consumed.
    // Framing::chunks: consumes all of `input`.
    size_t feed(std::string_view input);
    // Framing::chunks, after the LAST chunk: a pending CR (a chunk that ended in CR
    // and no chunk after it) is a bare CR. Framing::dot: nothing (the end was seen).
    void finish();

    // Framing::dot: the CRLF.CRLF has been consumed.
    bool ended() const { return ended_; }
    // The first error: 5.5.2 bare LF / bare CR, 5.3.4 size, or the sink's (as a
    // Status through mail::Status::from_error). Nothing when all went well.
    const std::optional<mail::Status>& error() const { return error_; }
    // Bytes given to the sink.
    uint64_t size() const { return size_; }

private:
    // What the bytes read so far leave undecided. Dot framing only: end_start is a
    // line start after a real CRLF (a "." there may begin the end), line_start one
    // after a bare newline (a "." there is only stuffing), dot and dot_cr a held "."
    // or ".\r" at an end_start. Both framings: text, and cr (a CR held until the next
    // byte says whether it is a CRLF or a bare CR).
    enum class State { end_start, line_start, text, cr, dot, dot_cr };
    enum class Newline { crlf, bare_lf, bare_cr };

    void line_end(Newline newline);
    void emit(std::string_view bytes);
    void fail(mail::Status status);
    void flush();

    DataDecoderSettings settings_;
    DataSink sink_;
    State state_;
    bool ended_ = false;
    std::optional<mail::Status> error_;
    uint64_t size_ = 0;
    uint64_t produced_ = 0;  // output accepted so far, sent or in out_
    std::string out_;        // output not yet given to the sink (< 64 KiB between calls)
};

}  // namespace mailroom::smtp
