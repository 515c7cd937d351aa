// What DataDecoder makes of the text after DATA and in BDAT chunks (RFC 5321 4.1.1.4,
// 4.5.2, 2.3.8; RFC 3030): where the data ends, dot-unstuffing, CRLF → LF, the SMTP
// smuggling probes in both bare-newline modes, the size limit, the sink's pieces and
// failures, and the same result in any chunking of the input.
#include "smtp/data_decoder.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

using mailroom::core::Result;
using mailroom::mail::Status;
using mailroom::smtp::BareNewline;
using mailroom::smtp::DataDecoder;
using mailroom::smtp::DataDecoderSettings;
using mailroom::smtp::Framing;

namespace {

using namespace std::string_literals;

constexpr size_t piece_size = 64 * 1024;
constexpr size_t whole = SIZE_MAX;

struct Run {
    std::string output;
    size_t consumed = 0;
    bool ended = false;
    std::optional<std::string> error_code;
    std::string error_text;
    uint64_t size = 0;
};

DataDecoderSettings settings(Framing framing, BareNewline mode, uint64_t limit = 0) {
    DataDecoderSettings s;
    s.framing = framing;
    s.bare_newline = mode;
    s.size_limit = limit;
    return s;
}

// Feeds `input` in pieces of `step` bytes, as a session would: in dot framing it
// stops at the end and counts what was consumed; then finish().
Run decode(std::string_view input, DataDecoderSettings s, size_t step = whole) {
    Run run;
    DataDecoder decoder(s, [&](std::string_view piece) -> Result<void> {
        run.output += piece;
        return {};
    });
    for (size_t at = 0; at < input.size() && !decoder.ended();) {
        const std::string_view piece = input.substr(at, step);
        const size_t used = decoder.feed(piece);
        REQUIRE(used <= piece.size());
        if (!decoder.ended()) REQUIRE(used == piece.size());
        run.consumed += used;
        at += piece.size();
    }
    decoder.finish();
    run.ended = decoder.ended();
    if (decoder.error()) {
        run.error_code = decoder.error()->code();
        run.error_text = decoder.error()->text();
    }
    run.size = decoder.size();
    return run;
}

Run dot(std::string_view input, BareNewline mode = BareNewline::reject, size_t step = whole) {
    return decode(input, settings(Framing::dot, mode), step);
}

// The contract written the slow way, on the whole input at once: where the data ends
// (the first CRLF "." CRLF, counting the CRLF of the DATA command), then each line
// end (CRLF, bare LF, bare CR) as LF and a leading "." dropped. Under reject, and at
// the size limit, the output is what was decoded before the error.
Run model(std::string_view input, DataDecoderSettings s) {
    Run run;
    const bool dots = s.framing == Framing::dot;
    std::string_view text = input;
    run.consumed = input.size();
    if (dots) {
        const size_t end = ("\r\n"s + std::string(input)).find("\r\n.\r\n");
        if (end != std::string::npos) {
            run.ended = true;
            run.consumed = end + 3;
            text = input.substr(0, end);  // up to and including the last line's CRLF
        }
    }
    std::string& out = run.output;
    auto put = [&](char c) {
        if (s.size_limit != 0 && out.size() == s.size_limit) run.error_code = "5.3.4";
        else out += c;
    };
    bool line_start = true;
    for (size_t i = 0; i < text.size() && !run.error_code; ++i) {
        const char c = text[i];
        const bool at_start = line_start;
        line_start = false;
        if (dots && at_start && c == '.') continue;
        if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
            put('\n');
            ++i;
            line_start = true;
        } else if (c == '\r' && i + 1 == text.size() && dots && !run.ended) {
            // A last CR with no more input: not yet known to be bare.
        } else if (c == '\r' || c == '\n') {
            if (s.bare_newline == BareNewline::reject) {
                run.error_code = "5.5.2";
            } else {
                put('\n');
                line_start = true;
            }
        } else {
            put(c);
        }
    }
    run.size = out.size();
    return run;
}

void require_same(const Run& got, const Run& expected) {
    CHECK(got.output == expected.output);
    CHECK(got.consumed == expected.consumed);
    CHECK(got.ended == expected.ended);
    CHECK(got.error_code == expected.error_code);
    CHECK(got.size == expected.size);
}

// The probes of the SMTP smuggling attacks (SEC Consult, 2023): a line end that a
// lax server takes for part of an end of data, followed by a smuggled command.
struct Probe {
    std::string bytes;
    std::string bare;  // what 5.5.2 names under reject
};
const std::vector<Probe> probes = {
    {"\n.\n", "bare LF"},       {"\r.\r", "bare CR"},       {"\n.\r\n", "bare LF"},
    {"\r\n.\n", "bare LF"},     {"\r.\r\n", "bare CR"},     {"\r\n.\r", "bare CR"},
    {"\r\n.\rX", "bare CR"},    {"\n.\r", "bare LF"},       {"\r.\n", "bare CR"},
    {"\r\r\n.\r", "bare CR"},   {"\r\n\n.\r\n", "bare LF"}, {"\r\n.\n\r\n", "bare LF"},
};
const std::string smuggled = "MAIL FROM:<evil@example.org>\r\n";

}  // namespace

TEST_CASE("The data ends at CRLF . CRLF, and the bytes after it are the next command",
          "[data_decoder]") {
    const std::string text = "Subject: hi\r\n\r\nhello\r\n.\r\n";
    const Run run = dot(text + "QUIT\r\n");
    CHECK(run.ended);
    CHECK(run.consumed == text.size());
    CHECK(run.output == "Subject: hi\n\nhello\n");
    CHECK(run.size == run.output.size());
    CHECK_FALSE(run.error_code);
}

TEST_CASE("A '.' line right after the DATA command is an empty message", "[data_decoder]") {
    const Run run = dot(".\r\nRSET\r\n");
    CHECK(run.ended);
    CHECK(run.consumed == 3);
    CHECK(run.output.empty());
    CHECK(run.size == 0);
    CHECK_FALSE(run.error_code);
}

TEST_CASE("Without CRLF . CRLF the data has not ended and all the input is consumed",
          "[data_decoder]") {
    for (const std::string input : {"hello\r\n", "hello\r\n.", "hello\r\n.\r", "x\r\n.y\r\n", ".\r", ""}) {
        const Run run = dot(input);
        CHECK_FALSE(run.ended);
        CHECK(run.consumed == input.size());
    }
}

TEST_CASE("A line that starts with a dot loses that dot, and '..' is a line holding '.'",
          "[data_decoder]") {
    const Run run = dot("..\r\n.hidden\r\n...\r\na.b\r\n.\r\n");
    CHECK(run.ended);
    CHECK(run.output == ".\nhidden\n..\na.b\n");
}

TEST_CASE("Feeding after the end consumes nothing", "[data_decoder]") {
    std::string output;
    DataDecoder decoder(settings(Framing::dot, BareNewline::reject), [&](std::string_view piece) -> Result<void> {
        output += piece;
        return {};
    });
    CHECK(decoder.feed("a\r\n.\r\nQUIT\r\n") == 6);
    REQUIRE(decoder.ended());
    CHECK(decoder.feed("more\r\n.\r\n") == 0);
    CHECK(decoder.feed("\r\n") == 0);
    decoder.finish();
    CHECK(output == "a\n");
}

TEST_CASE("A smuggling probe never ends the data, in either bare-newline mode", "[data_decoder]") {
    for (const auto& probe : probes) {
        for (const auto mode : {BareNewline::reject, BareNewline::normalize}) {
            INFO("probe " << Catch::Detail::stringify(probe.bytes));
            const std::string input = "a" + probe.bytes + smuggled;
            const Run run = dot(input, mode);
            CHECK_FALSE(run.ended);
            CHECK(run.consumed == input.size());
        }
    }
}

TEST_CASE("Under reject, a bare LF or bare CR refuses the message with 5.5.2 and the scan goes on to the real end",
          "[data_decoder]") {
    for (const auto& probe : probes) {
        INFO("probe " << Catch::Detail::stringify(probe.bytes));
        const std::string data = "a" + probe.bytes + smuggled + "more\r\n.\r\n";
        const Run run = dot(data + "QUIT\r\n", BareNewline::reject);
        CHECK(run.ended);
        CHECK(run.consumed == data.size());
        REQUIRE(run.error_code);
        CHECK(*run.error_code == "5.5.2");
        CHECK(run.error_text == probe.bare + " in message text refused (RFC 5321 2.3.8)");
        // Nothing after the bare newline reached the sink.
        CHECK(run.output.find("MAIL") == std::string::npos);
        CHECK(run.output.find("more") == std::string::npos);
    }
}

TEST_CASE("Under normalize, a bare LF or bare CR is a line end, and the smuggled command stays text",
          "[data_decoder]") {
    struct Case {
        std::string probe;
        std::string output;
    };
    const std::vector<Case> cases = {
        {"\n.\n", "a\n\n"},       {"\r.\r", "a\n\n"},         {"\n.\r\n", "a\n\n"},
        {"\r\n.\n", "a\n\n"},     {"\r.\r\n", "a\n\n"},       {"\r\n.\r", "a\n\n"},
        {"\r\n.\rX", "a\n\nX"},   {"\r\r\n.\r", "a\n\n\n"},   {"\r\n\n.\r\n", "a\n\n\n"},
        {"\r\n.\n\r\n", "a\n\n\n"}, {"\r\n.\r\r\n", "a\n\n\n"}, {"\n..\n", "a\n.\n"},
    };
    for (const auto& c : cases) {
        INFO("probe " << Catch::Detail::stringify(c.probe));
        const std::string data = "a" + c.probe + smuggled + ".\r\n";
        const Run run = dot(data + "QUIT\r\n", BareNewline::normalize);
        CHECK(run.ended);
        CHECK(run.consumed == data.size());
        CHECK_FALSE(run.error_code);
        CHECK(run.output == c.output + "MAIL FROM:<evil@example.org>\n");
    }
}

TEST_CASE("A '.' line after a bare LF line end does not end the data under normalize",
          "[data_decoder]") {
    const std::string data = "a\n.\r\nb\r\n.\r\n";
    const Run run = dot(data + "QUIT\r\n", BareNewline::normalize);
    CHECK(run.ended);
    CHECK(run.consumed == data.size());
    CHECK(run.output == "a\n\nb\n");
}

TEST_CASE("A '.' line after a bare CR line end does not end the data under normalize",
          "[data_decoder]") {
    const std::string data = "a\r.\r\nb\r\n.\r\n";
    const Run run = dot(data + "QUIT\r\n", BareNewline::normalize);
    CHECK(run.ended);
    CHECK(run.consumed == data.size());
    CHECK(run.output == "a\n\nb\n");
}

TEST_CASE("A CR before CRLF is a bare CR, and the CRLF still counts before an end",
          "[data_decoder]") {
    const Run normalized = dot("a\r\r\n.\r\n", BareNewline::normalize);
    CHECK(normalized.ended);
    CHECK(normalized.consumed == 7);
    CHECK(normalized.output == "a\n\n");
    const Run rejected = dot("a\r\r\n.\r\n", BareNewline::reject);
    CHECK(rejected.ended);
    CHECK(rejected.error_code == "5.5.2");
    CHECK(rejected.output == "a");
}

TEST_CASE("CRLF . CRLF split at any point between two feeds still ends the data there",
          "[data_decoder]") {
    const std::string data = "ab\r\n.\r\n";
    const std::string input = data + "NOOP\r\n";
    for (size_t split = 0; split <= input.size(); ++split) {
        INFO("split at " << split);
        std::string output;
        DataDecoder decoder(settings(Framing::dot, BareNewline::reject), [&](std::string_view piece) -> Result<void> {
            output += piece;
            return {};
        });
        size_t consumed = decoder.feed(std::string_view(input).substr(0, split));
        if (!decoder.ended()) consumed += decoder.feed(std::string_view(input).substr(split));
        CHECK(decoder.ended());
        CHECK(consumed == data.size());
        CHECK(output == "ab\n");
        CHECK_FALSE(decoder.error());
    }
}

TEST_CASE("The input fed one byte at a time gives the same output, consumed count and error as all at once",
          "[data_decoder]") {
    std::vector<std::string> inputs = {
        ".\r\n", "\r\n.\r\n", "a\r\n.\r\n", "..\r\n.\r\n", "a\r\n..\r\n.\r\nX", "a\n.\nb\r\n.\r\n",
        "a\r.\rb\r\n.\r\n", "\r\r\n.\r\n", "\r.\r\n\r\n.\r\n", "a\r\n.\r\r\n.\r\n", "a\r\n.\n.\r\n",
        "x\r", "x\r\n.", "x\r\n.\r", ".", "\n", "\r", "\0\xff\r\n.\r\n"s, "a\r\n.\r\n.\r\n",
    };
    for (const auto& probe : probes) inputs.push_back("a" + probe.bytes + smuggled + "b\r\n.\r\nQUIT\r\n");
    // Random inputs over the bytes that matter, from a fixed seed so a failure repeats.
    std::mt19937 random(20240105);
    const std::string alphabet = "\r\n.a";
    for (int n = 0; n < 2000; ++n) {
        std::string input(random() % 24, ' ');
        for (char& c : input) c = alphabet[random() % alphabet.size()];
        inputs.push_back(input);
    }
    for (const auto& input : inputs) {
        for (const auto framing : {Framing::dot, Framing::chunks}) {
            for (const auto mode : {BareNewline::reject, BareNewline::normalize}) {
                for (const uint64_t limit : {uint64_t{0}, uint64_t{3}}) {
                    INFO("input " << Catch::Detail::stringify(input) << ", chunks "
                                  << (framing == Framing::chunks) << ", normalize "
                                  << (mode == BareNewline::normalize) << ", limit " << limit);
                    const auto s = settings(framing, mode, limit);
                    const Run all = decode(input, s);
                    require_same(all, model(input, s));
                    for (const size_t step : {1, 2, 3, 5}) {
                        INFO("fed " << step << " at a time");
                        require_same(decode(input, s, step), all);
                    }
                }
            }
        }
    }
}

TEST_CASE("A 30 MB line streams through in pieces of at most 64 KiB, as it is fed",
          "[data_decoder]") {
    const size_t line = 30 * 1000 * 1000;
    const std::string block(1000 * 1000, 'x');
    uint64_t received = 0;
    size_t pieces = 0, largest = 0;
    size_t not_x = 0;
    DataDecoder decoder(settings(Framing::dot, BareNewline::reject), [&](std::string_view piece) -> Result<void> {
        received += piece.size();
        ++pieces;
        largest = std::max(largest, piece.size());
        not_x += piece.size() - std::count(piece.begin(), piece.end(), 'x');
        return {};
    });
    for (size_t fed = 0; fed < line; fed += block.size()) {
        REQUIRE(decoder.feed(block) == block.size());
        // Never held: all of it reached the sink before the next read.
        REQUIRE(received == fed + block.size());
    }
    CHECK(decoder.feed("\r\n.\r\n") == 5);
    CHECK(decoder.ended());
    CHECK(received == line + 1);
    CHECK(decoder.size() == line + 1);
    CHECK(not_x == 1);  // the LF
    CHECK(largest <= piece_size);
    CHECK(pieces >= line / piece_size);
    CHECK_FALSE(decoder.error());
}

TEST_CASE("What a feed decoded has reached the sink when it returns, only an undecided CR or dot waits",
          "[data_decoder]") {
    std::string output;
    DataDecoder decoder(settings(Framing::dot, BareNewline::reject), [&](std::string_view piece) -> Result<void> {
        output += piece;
        return {};
    });
    decoder.feed("abc");
    CHECK(output == "abc");
    decoder.feed("\r");
    CHECK(output == "abc");
    decoder.feed("\n.");
    CHECK(output == "abc\n");
    decoder.feed("x");
    CHECK(output == "abc\nx");
    decoder.feed("\r\n.\r");
    CHECK(output == "abc\nx\n");
    decoder.feed("\n");
    CHECK(decoder.ended());
    CHECK(decoder.size() == 6);
}

TEST_CASE("The size limit counts the output: exactly at it passes, one byte over is 5.3.4",
          "[data_decoder]") {
    // "..\r\nabcd\r\n" decodes to ".\nabcd\n": 7 bytes from 10.
    const std::string data = "..\r\nabcd\r\n.\r\n";
    const Run at = decode(data, settings(Framing::dot, BareNewline::reject, 7));
    CHECK(at.ended);
    CHECK_FALSE(at.error_code);
    CHECK(at.output == ".\nabcd\n");
    CHECK(at.size == 7);

    const Run over = decode(data + "QUIT\r\n", settings(Framing::dot, BareNewline::reject, 6));
    CHECK(over.ended);
    CHECK(over.consumed == data.size());
    REQUIRE(over.error_code);
    CHECK(*over.error_code == "5.3.4");
    CHECK(over.error_text == "message size exceeds fixed maximum message size");
    CHECK(over.size <= 6);

    const Run chunks_at = decode("abc\r\n", settings(Framing::chunks, BareNewline::reject, 4));
    CHECK_FALSE(chunks_at.error_code);
    const Run chunks_over = decode("abc\r\n", settings(Framing::chunks, BareNewline::reject, 3));
    CHECK(chunks_over.error_code == "5.3.4");
}

TEST_CASE("The size limit error is permanent and the rest of the data is still scanned for its end",
          "[data_decoder]") {
    std::string output;
    DataDecoder decoder(settings(Framing::dot, BareNewline::reject, 100), [&](std::string_view piece) -> Result<void> {
        output += piece;
        return {};
    });
    const std::string line(60, 'y');
    CHECK(decoder.feed(line + "\r\n") == 62);
    CHECK_FALSE(decoder.error());
    CHECK(decoder.feed(line + "\r\n") == 62);
    REQUIRE(decoder.error());
    CHECK(decoder.error()->is_permanent());
    CHECK(decoder.error()->to_reply_code() == 552);
    const size_t sent = output.size();
    CHECK(sent <= 100);
    CHECK(decoder.feed(line + "\r\n.\r\nQUIT\r\n") == 65);
    CHECK(decoder.ended());
    CHECK(output.size() == sent);
}

TEST_CASE("A sink failure becomes the sticky error and the sink is not called again",
          "[data_decoder]") {
    int calls = 0;
    DataDecoder decoder(settings(Framing::dot, BareNewline::reject), [&](std::string_view) -> Result<void> {
        ++calls;
        return mailroom::core::unexpected_errno("write queue file", ENOSPC);
    });
    CHECK(decoder.feed("line 1\r\n") == 8);
    REQUIRE(decoder.error());
    CHECK(decoder.error()->code() == "4.3.1");
    CHECK(decoder.error()->is_temporary());
    CHECK(decoder.error()->text().find("write queue file") != std::string::npos);
    CHECK(decoder.feed("line 2\r\nbare\nline\r\n") == 19);
    CHECK(decoder.feed(".\r\nQUIT\r\n") == 3);
    CHECK(decoder.ended());
    CHECK(calls == 1);
    CHECK(decoder.size() == 0);
    CHECK(decoder.error()->code() == "4.3.1");  // the later bare LF did not replace it
}

TEST_CASE("NUL and 8-bit bytes pass unchanged", "[data_decoder]") {
    const std::string text = "caf\xc3\xa9 \0\xff\x80 end"s;
    const Run run = dot(text + "\r\n\0\r\n.\r\n"s);
    CHECK(run.ended);
    CHECK_FALSE(run.error_code);
    CHECK(run.output == text + "\n\0\n"s);
}

TEST_CASE("In chunks, dots are not special and everything is consumed", "[data_decoder]") {
    std::string output;
    DataDecoder decoder(settings(Framing::chunks, BareNewline::reject), [&](std::string_view piece) -> Result<void> {
        output += piece;
        return {};
    });
    CHECK(decoder.feed(".\r\n..\r\n.\r\nafter\r\n") == 17);
    decoder.finish();
    CHECK_FALSE(decoder.ended());
    CHECK_FALSE(decoder.error());
    CHECK(output == ".\n..\n.\nafter\n");
}

TEST_CASE("In chunks, a CR ending one chunk and the LF starting the next are one line end",
          "[data_decoder]") {
    std::string output;
    DataDecoder decoder(settings(Framing::chunks, BareNewline::reject), [&](std::string_view piece) -> Result<void> {
        output += piece;
        return {};
    });
    CHECK(decoder.feed("one\r") == 4);
    CHECK(output == "one");
    CHECK(decoder.feed("\ntwo\r") == 5);
    CHECK(decoder.feed("") == 0);
    CHECK(decoder.feed("\n") == 1);
    decoder.finish();
    CHECK_FALSE(decoder.error());
    CHECK(output == "one\ntwo\n");
    CHECK(decoder.size() == 8);
}

TEST_CASE("In chunks, a CR left pending by the last chunk is a bare CR at finish",
          "[data_decoder]") {
    const Run rejected = decode("text\r", settings(Framing::chunks, BareNewline::reject));
    CHECK(rejected.error_code == "5.5.2");
    CHECK(rejected.error_text == "bare CR in message text refused (RFC 5321 2.3.8)");
    CHECK(rejected.output == "text");

    const Run normalized = decode("text\r", settings(Framing::chunks, BareNewline::normalize));
    CHECK_FALSE(normalized.error_code);
    CHECK(normalized.output == "text\n");
}

TEST_CASE("In chunks under reject, a bare LF or bare CR refuses the message with 5.5.2",
          "[data_decoder]") {
    for (const std::string input : {"a\nb\r\n", "a\rb\r\n", "a\r\r\n"}) {
        INFO(Catch::Detail::stringify(input));
        const Run run = decode(input, settings(Framing::chunks, BareNewline::reject));
        CHECK(run.consumed == input.size());
        CHECK(run.error_code == "5.5.2");
        CHECK(run.output == "a");
    }
    const Run normalized = decode("a\nb\rc\r\r\n", settings(Framing::chunks, BareNewline::normalize));
    CHECK_FALSE(normalized.error_code);
    CHECK(normalized.output == "a\nb\nc\n\n");
}
