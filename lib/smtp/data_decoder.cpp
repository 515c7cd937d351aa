// DataDecoder: one byte-level state machine for both framings. The state says what
// the bytes already read leave undecided (a held CR, a held "." or ".\r" at a line
// start); text between line ends is passed on in spans, never byte by byte. emit()
// counts against the size limit and gathers the output into pieces of up to 64 KiB.
//
// Decisions the header leaves open, taken here:
// - The text decoded before an error still reaches the sink (up to the size limit,
//   the bytes that fit), so the sink sees the same bytes in any chunking of the input.
// - A "." held at a line start is always dropped: either it is the end of the data or
//   the stuffing dot of the line it begins, so nothing of it is ever output.
#include "smtp/data_decoder.hpp"

#include <algorithm>
#include <utility>

namespace mailroom::smtp {

namespace {

constexpr size_t piece_size = 64 * 1024;

}  // namespace

DataDecoder::DataDecoder(DataDecoderSettings settings, DataSink sink)
    : settings_(settings),
      sink_(std::move(sink)),
      // The CRLF that ended the DATA command is the one before a first-line ".".
      state_(settings.framing == Framing::dot ? State::end_start : State::text) {}

size_t DataDecoder::feed(std::string_view input) {
    if (ended_) return 0;
    const bool dots = settings_.framing == Framing::dot;
    size_t i = 0;
    while (i < input.size() && !ended_) {
        const char c = input[i];
        switch (state_) {
            case State::text: {
                size_t j = i;
                while (j < input.size() && input[j] != '\r' && input[j] != '\n') ++j;
                emit(input.substr(i, j - i));
                if (j == input.size()) {
                    i = j;
                } else if (input[j] == '\r') {
                    state_ = State::cr;  // CRLF or a bare CR: the next byte decides
                    i = j + 1;
                } else {
                    line_end(Newline::bare_lf);
                    i = j + 1;
                }
                break;
            }
            case State::cr:
                if (c == '\n') {
                    line_end(Newline::crlf);
                    ++i;
                } else {
                    line_end(Newline::bare_cr);  // c is read again, at the new line's start
                }
                break;
            case State::end_start:
            case State::line_start:
                if (dots && c == '.') {
                    // Only after a real CRLF can this dot begin the end of the data.
                    state_ = state_ == State::end_start ? State::dot : State::text;
                    ++i;
                } else {
                    state_ = State::text;
                }
                break;
            case State::dot:
                if (c == '\r') {
                    state_ = State::dot_cr;
                    ++i;
                } else {
                    state_ = State::text;  // the dot was stuffing: dropped
                }
                break;
            case State::dot_cr:
                if (c == '\n') {
                    ended_ = true;
                    ++i;
                } else {
                    line_end(Newline::bare_cr);  // ".\r" then not LF: a "." line ended by a bare CR
                }
                break;
        }
    }
    // The caller may commit as soon as ended() is true, and a line may never wait in
    // the buffer for the next read: what is decoded goes out now.
    flush();
    return i;
}

void DataDecoder::finish() {
    if (settings_.framing != Framing::chunks) return;
    // No chunk follows to bring the LF: the held CR was a bare one.
    if (state_ == State::cr) line_end(Newline::bare_cr);
    flush();
}

void DataDecoder::line_end(Newline newline) {
    const bool dots = settings_.framing == Framing::dot;
    if (newline == Newline::crlf) {
        emit("\n");
        state_ = dots ? State::end_start : State::text;
        return;
    }
    if (settings_.bare_newline == BareNewline::reject) {
        fail(mail::Status::perm("5.5.2", newline == Newline::bare_lf
                                             ? "bare LF in message text refused (RFC 5321 2.3.8)"
                                             : "bare CR in message text refused (RFC 5321 2.3.8)"));
    } else {
        emit("\n");
    }
    // Under reject as well: the scan for the end goes on, and must not take a "."
    // after a bare newline for one after a CRLF.
    state_ = dots ? State::line_start : State::text;
}

void DataDecoder::emit(std::string_view bytes) {
    if (error_) return;
    const uint64_t limit = settings_.size_limit;
    const bool too_big = limit != 0 && bytes.size() > limit - produced_;
    if (too_big) bytes = bytes.substr(0, static_cast<size_t>(limit - produced_));
    while (!bytes.empty() && !error_) {
        const size_t take = std::min(bytes.size(), piece_size - out_.size());
        out_.append(bytes.substr(0, take));
        produced_ += take;
        bytes.remove_prefix(take);
        if (out_.size() >= piece_size) flush();
    }
    if (too_big) fail(mail::Status::perm("5.3.4", "message size exceeds fixed maximum message size"));
}

void DataDecoder::fail(mail::Status status) {
    const bool failed_before = error_.has_value();
    flush();  // what was decoded before the error is not part of it
    // The text's own fault (its size, a bare newline) is what the client must hear,
    // even when the sink also refused what came before it.
    if (!failed_before) error_ = std::move(status);
}

void DataDecoder::flush() {
    if (error_ || out_.empty()) return;
    if (auto written = sink_(out_); !written) {
        error_ = mail::Status::from_error(written.error());
        return;
    }
    size_ += out_.size();
    out_.clear();
}

}  // namespace mailroom::smtp
