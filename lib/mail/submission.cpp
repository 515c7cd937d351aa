// SubmissionFilter: two stages. normalize() turns CR LF into LF and watches for the
// "." line; forward() holds the header section, then passes the rest through emit(),
// which counts against the size limit and hands 64 KiB chunks to the sink.
#include "mail/submission.hpp"

#include <algorithm>
#include <cerrno>

#include "mail/address.hpp"
#include "mail/address_list.hpp"
#include "mail/submission_headers.hpp"

namespace mailroom::mail {

namespace {

constexpr size_t chunk_size = 64 * 1024;

// RFC 5322 ftext: printable US-ASCII except ':'.
bool is_name_char(char c) { return c >= 33 && c <= 126 && c != ':'; }
bool is_blank(char c) { return c == ' ' || c == '\t'; }

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals_ascii(s.substr(0, prefix.size()), prefix);
}

// Calls fn(name, field) for each field of a header section: field is its whole text
// with continuation lines and the final LF; name is what precedes the ':', trimmed.
template <typename Fn>
void for_each_field(std::string_view section, Fn fn) {
    size_t pos = 0;
    while (pos < section.size()) {
        size_t end = pos;
        do {
            end = section.find('\n', end);
            end = end == std::string_view::npos ? section.size() : end + 1;
        } while (end < section.size() && is_blank(section[end]));
        std::string_view field = section.substr(pos, end - pos);
        std::string_view name = field.substr(0, field.find(':'));
        while (!name.empty() && is_blank(name.back())) name.remove_suffix(1);
        fn(name, field);
        pos = end;
    }
}

bool is_bcc(std::string_view name) {
    return iequals_ascii(name, "Bcc") || iequals_ascii(name, "Resent-Bcc");
}

}  // namespace

SubmissionFilter::SubmissionFilter(SubmissionSettings settings, ContentSink sink)
    : settings_(std::move(settings)), sink_(std::move(sink)) {}

core::Result<void> SubmissionFilter::feed(std::string_view input) {
    if (!error_ && !input_ended_) normalize(input);
    return status();
}

core::Result<void> SubmissionFilter::finish() {
    if (!input_ended_) end_of_input();
    flush();
    return status();
}

core::Result<void> SubmissionFilter::status() const {
    if (error_) return core::unexpected(*error_);
    return {};
}

void SubmissionFilter::normalize(std::string_view input) {
    size_t i = 0;
    while (i < input.size() && !error_) {
        const char c = input[i];
        switch (line_state_) {
            case LineState::start:
                line_state_ = LineState::middle;
                if (c == '.' && settings_.dot_ends_message) {
                    line_state_ = LineState::dot;
                    ++i;
                }
                break;
            case LineState::dot:
            case LineState::dot_cr:
                if (c == '\n') {
                    ended_by_dot_ = true;
                    end_of_input();
                    return;
                }
                if (c == '\r' && line_state_ == LineState::dot) {
                    line_state_ = LineState::dot_cr;
                    ++i;
                    break;
                }
                // Not the end after all: the held "." or ".\r" (a bare CR) is content.
                forward(line_state_ == LineState::dot ? "." : ".\r");
                line_state_ = LineState::middle;
                break;
            case LineState::middle: {
                const size_t j = input.find_first_of("\r\n", i);
                if (j == std::string_view::npos) {
                    forward(input.substr(i));
                    i = input.size();
                } else if (input[j] == '\n') {
                    forward(input.substr(i, j + 1 - i));
                    line_state_ = LineState::start;
                    i = j + 1;
                } else {
                    forward(input.substr(i, j - i));
                    line_state_ = LineState::cr;  // held until we know what follows
                    i = j + 1;
                }
                break;
            }
            case LineState::cr:
                if (c == '\n') {
                    forward("\n");
                    line_state_ = LineState::start;
                    ++i;
                } else {
                    forward("\r");  // a bare CR; a second CR is held in its place
                    if (c == '\r') ++i;
                    else line_state_ = LineState::middle;
                }
                break;
        }
    }
}

void SubmissionFilter::end_of_input() {
    input_ended_ = true;
    if (!ended_by_dot_) {
        switch (line_state_) {
            case LineState::dot: ended_by_dot_ = true; break;  // "." then EOF, as Postfix
            case LineState::dot_cr: forward(".\r"); break;
            case LineState::cr: forward("\r"); break;
            default: break;
        }
    }
    if (!in_header_ || error_) return;
    if (header_.size() == line_start_) {
        end_header_section(false);
    } else if (line_kind_ == LineKind::field || line_kind_ == LineKind::continuation) {
        header_ += '\n';  // fields follow this line
        line_start_ = header_.size();
        end_header_section(false);
    } else {
        end_header_section(true);  // "Subject" at EOF: not a field
    }
}

void SubmissionFilter::forward(std::string_view normalized) {
    if (in_header_) hold_header(normalized);
    if (!normalized.empty()) emit(normalized);
}

// Takes bytes into header_ a line at a time, until the header section ends or would
// pass its limit; what is not taken is left in `normalized` for the body.
void SubmissionFilter::hold_header(std::string_view& normalized) {
    while (!normalized.empty() && in_header_ && !error_) {
        if (header_.size() >= header_section_limit) {
            overflow_header_section();
            return;
        }
        const size_t lf = normalized.find('\n');
        const size_t take = std::min(lf == std::string_view::npos ? normalized.size() : lf + 1,
                                     header_section_limit - header_.size());
        header_.append(normalized.substr(0, take));
        normalized.remove_prefix(take);
        classify_line();
        if (!in_header_ || header_.back() != '\n') continue;
        if (line_kind_ == LineKind::field) seen_field_ = true;
        line_start_ = class_pos_ = header_.size();
        line_kind_ = LineKind::undecided;
        space_after_name_ = false;
    }
}

// Decides, as soon as the bytes allow, whether the current line is a field, a
// continuation, the empty separator or something else; the last two end the section.
void SubmissionFilter::classify_line() {
    while (line_kind_ == LineKind::undecided && class_pos_ < header_.size()) {
        const char c = header_[class_pos_];
        if (class_pos_++ == line_start_) {
            if (c == '\n') line_kind_ = LineKind::empty;
            else if (is_blank(c)) line_kind_ = seen_field_ ? LineKind::continuation : LineKind::other;
            else if (!is_name_char(c)) line_kind_ = LineKind::other;
        } else if (c == ':') {
            line_kind_ = LineKind::field;
        } else if (is_blank(c)) {
            space_after_name_ = true;  // "Subject : x" (RFC 5322 4.5 obs-optional)
        } else if (!is_name_char(c) || space_after_name_) {
            line_kind_ = LineKind::other;
        }
    }
    if (line_kind_ == LineKind::empty) end_header_section(false);
    else if (line_kind_ == LineKind::other) end_header_section(true);
}

void SubmissionFilter::end_header_section(bool add_separator) {
    in_header_ = false;
    write_headers(std::string_view(header_).substr(0, line_start_), false);
    if (add_separator) emit("\n");
    emit(std::string_view(header_).substr(line_start_));
    std::string().swap(header_);
}

void SubmissionFilter::overflow_header_section() {
    in_header_ = false;
    write_headers(std::string_view(header_).substr(0, line_start_), true);
    emit(std::string_view(header_).substr(line_start_));
    std::string().swap(header_);
}

void SubmissionFilter::write_headers(std::string_view section, bool added_first) {
    bool has_from = false, has_date = false, has_message_id = false;
    for_each_field(section, [&](std::string_view name, std::string_view field) {
        has_from = has_from || iequals_ascii(name, "From");
        has_date = has_date || iequals_ascii(name, "Date");
        if (!has_message_id && iequals_ascii(name, "Message-ID")) {
            has_message_id = true;
            message_id_ = std::string(field);
        }
    });
    if (settings_.recipients_from_headers) collect_recipients(section);
    const auto& s = settings_;
    std::string added;
    if (!has_from) added += from_header(s.full_name, s.login, s.myhostname);
    if (!has_date) added += date_header(s.now);
    if (!has_message_id) {
        message_id_ = message_id_header(s.now, s.queue_id, s.myhostname);
        added += message_id_;
    }
    // The value alone, unfolded, for the log's message-id= (SPEC section 9).
    message_id_.erase(0, std::min(message_id_.find(':') + 1, message_id_.size()));
    for (char& c : message_id_) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    while (!message_id_.empty() && message_id_.front() == ' ') message_id_.erase(0, 1);
    while (!message_id_.empty() && message_id_.back() == ' ') message_id_.pop_back();

    emit(received_header(s.myhostname, s.uid, s.queue_id, s.now));
    if (added_first) emit(added);
    if (!s.recipients_from_headers) {
        emit(section);
    } else {
        for_each_field(section, [&](std::string_view name, std::string_view field) {
            if (!is_bcc(name)) emit(field);
        });
    }
    if (!added_first) emit(added);
}

void SubmissionFilter::collect_recipients(std::string_view section) {
    bool resent = false;
    for_each_field(section, [&](std::string_view name, std::string_view) {
        resent = resent || starts_with_ci(name, "Resent-");
    });
    const std::string_view prefix = resent ? "Resent-" : "";
    for_each_field(section, [&](std::string_view name, std::string_view field) {
        if (error_ || !starts_with_ci(name, prefix)) return;
        const std::string_view base = name.substr(prefix.size());
        if (!iequals_ascii(base, "To") && !iequals_ascii(base, "Cc") && !iequals_ascii(base, "Bcc")) {
            return;
        }
        const std::string field_name(name);
        auto list = parse_address_list(field.substr(field.find(':') + 1));
        if (!list) {
            error_ = core::input_error("bad address list in " + field_name + ": " +
                                       list.error().message());
            return;
        }
        for (auto& listed : *list) {
            auto address = Address::parse(listed.addr_spec, ParseMode::bare);
            if (!address) {
                error_ = core::input_error("bad address in " + field_name + ": \"" + listed.source +
                                           "\": " + address.error().message());
                return;
            }
            recipients_.push_back(std::move(listed.addr_spec));
        }
    });
}

void SubmissionFilter::emit(std::string_view bytes) {
    while (!bytes.empty() && !error_) {
        if (settings_.size_limit != 0 && bytes.size() > settings_.size_limit - produced_) {
            error_ = core::errno_error("message larger than message_size_limit (" +
                                           std::to_string(settings_.size_limit) + " bytes)",
                                       EFBIG);
            return;
        }
        const size_t take = std::min(bytes.size(), chunk_size - out_.size());
        out_.append(bytes.substr(0, take));
        produced_ += take;
        bytes.remove_prefix(take);
        if (out_.size() >= chunk_size) flush();
    }
}

void SubmissionFilter::flush() {
    if (error_ || out_.empty()) return;
    if (auto r = sink_(out_); !r) {
        error_ = r.error();
        return;
    }
    sink_bytes_ += out_.size();
    out_.clear();
}

}  // namespace mailroom::mail
