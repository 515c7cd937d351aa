// lib/smtp/held_message.hpp: the text of an LMTP transaction held in a descriptor,
// in memory while small, in a nameless file in tmp_dir once past memory_limit.
#include "smtp/held_message.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "support/test_support.hpp"

using mailroom::smtp::HeldMessage;
using mailroom::test::names_in;
using mailroom::test::TempDir;

namespace {

// Bytes [0, size) of fd, read with pread as a delivery agent reads them.
std::string pread_all(int fd, uint64_t size) {
    std::string out(size, '\0');
    uint64_t at = 0;
    while (at < size) {
        ssize_t n = ::pread(fd, out.data() + at, size - at, static_cast<off_t>(at));
        REQUIRE(n > 0);
        at += static_cast<uint64_t>(n);
    }
    return out;
}

// Some text with every byte value in it, `size` bytes long.
std::string text_of(size_t size) {
    std::string text(size, '\0');
    for (size_t i = 0; i < size; ++i) text[i] = static_cast<char>((i * 131 + i / 7) % 256);
    return text;
}

HeldMessage created(const std::string& tmp_dir, uint64_t memory_limit) {
    auto held = HeldMessage::create(tmp_dir, memory_limit);
    INFO((held ? "" : held.error().message()));
    REQUIRE(held);
    return std::move(*held);
}

// Writes text in pieces of the given sizes, cycling through them.
void write_in_chunks(HeldMessage& held, std::string_view text, const std::vector<size_t>& sizes) {
    size_t at = 0;
    for (size_t i = 0; at < text.size(); ++i) {
        size_t n = std::min(sizes[i % sizes.size()], text.size() - at);
        auto written = held.write(text.substr(at, n));
        INFO((written ? "" : written.error().message()));
        REQUIRE(written);
        at += n;
    }
}

}  // namespace

TEST_CASE("A small message is held in memory and read back whole with pread", "[held_message]") {
    TempDir tmp;
    auto held = created(tmp.path, 4096);
    CHECK(held.in_memory());
    CHECK(held.size() == 0);
    REQUIRE(held.fd() >= 0);
    const std::string text = "Received: from a\nSubject: hi\n\nbody\n";
    REQUIRE(held.write(text));
    CHECK(held.in_memory());
    CHECK(held.size() == text.size());
    CHECK(pread_all(held.fd(), held.size()) == text);
}

TEST_CASE("Bytes 0 to size() are the text written in order, however it was chunked", "[held_message]") {
    TempDir tmp;
    const std::string text = text_of(3000);
    for (const auto& sizes : std::vector<std::vector<size_t>>{{1}, {7, 1, 300}, {4096}, {0, 5}, {999, 2, 1}}) {
        auto held = created(tmp.path, 1 << 20);
        write_in_chunks(held, text, sizes);
        CHECK(held.in_memory());
        CHECK(held.size() == text.size());
        CHECK(pread_all(held.fd(), held.size()) == text);
    }
}

TEST_CASE("A message of exactly memory_limit bytes stays in memory, one byte more spills it", "[held_message]") {
    TempDir tmp;
    auto held = created(tmp.path, 100);
    REQUIRE(held.write(text_of(100)));
    CHECK(held.in_memory());
    REQUIRE(held.write("x"));
    CHECK_FALSE(held.in_memory());
    CHECK(held.size() == 101);
    CHECK(pread_all(held.fd(), 101) == text_of(100) + "x");
}

TEST_CASE("Past memory_limit the message spills to a file and is still whole, however it was chunked",
          "[held_message]") {
    TempDir tmp;
    // More than the spill's own 64 KiB copy buffer, so the copy takes several rounds.
    const std::string text = text_of(300 * 1024);
    for (const auto& sizes : std::vector<std::vector<size_t>>{{1000}, {150 * 1024 + 1}, {300 * 1024}, {65536, 3}}) {
        auto held = created(tmp.path, 200 * 1024);
        write_in_chunks(held, text, sizes);
        CHECK_FALSE(held.in_memory());
        CHECK(held.size() == text.size());
        CHECK(pread_all(held.fd(), held.size()) == text);
    }
}

TEST_CASE("The spilled file lies in tmp_dir and has no name there, before the spill or after", "[held_message]") {
    TempDir tmp;
    struct stat folder {};
    REQUIRE(::stat(tmp.path.c_str(), &folder) == 0);
    auto held = created(tmp.path, 64);
    CHECK(names_in(tmp.path).empty());
    REQUIRE(held.write(text_of(60)));
    CHECK(names_in(tmp.path).empty());
    REQUIRE(held.write(text_of(200)));
    REQUIRE_FALSE(held.in_memory());
    CHECK(names_in(tmp.path).empty());
    struct stat file {};
    REQUIRE(::fstat(held.fd(), &file) == 0);
    CHECK(S_ISREG(file.st_mode));
    CHECK(file.st_nlink == 0);
    CHECK(file.st_dev == folder.st_dev);
    REQUIRE(held.write(text_of(5000)));
    CHECK(names_in(tmp.path).empty());
}

TEST_CASE("A tmp_dir that cannot be written fails at the spill, not before, and what was held stays whole",
          "[held_message]") {
    TempDir tmp;
    const std::string regular_file = tmp.write("not-a-folder", "x");
    for (const std::string& bad : {tmp.path + "/missing", regular_file}) {
        INFO(bad);
        auto held = HeldMessage::create(bad, 100);
        REQUIRE(held);  // not before: nothing is made in tmp_dir while the text is small
        REQUIRE(held->write(text_of(80)));
        CHECK(held->in_memory());
        auto spilled = held->write(text_of(50));
        CHECK_FALSE(spilled);
        if (!spilled) CHECK(spilled.error().message().find(bad) != std::string::npos);
        CHECK(held->size() == 80);
        CHECK(pread_all(held->fd(), held->size()) == text_of(80));
    }
    CHECK(names_in(tmp.path) == std::vector<std::string>{"not-a-folder"});
}

TEST_CASE("A held message's descriptor is close-on-exec", "[held_message]") {
    TempDir tmp;
    auto held = created(tmp.path, 10);
    CHECK((::fcntl(held.fd(), F_GETFD) & FD_CLOEXEC) != 0);
    REQUIRE(held.write(text_of(20)));
    REQUIRE_FALSE(held.in_memory());
    CHECK((::fcntl(held.fd(), F_GETFD) & FD_CLOEXEC) != 0);
}
