// The password channel's packets (smtp/password_request.hpp).
#include "smtp/password_request.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

using namespace mailroom::smtp;
using mailroom::core::PasswordVerdict;
using namespace std::string_literals;

namespace {

std::string request(const std::string& id, const std::string& user, const std::string& password) {
    return "password1\0"s + id + "\0"s + user + "\0"s + password;
}

std::string answer(const std::string& id, const std::string& word) { return "password1\0"s + id + "\0"s + word; }

}  // namespace

TEST_CASE("a password request is version, id, user and password, NUL between them", "[password_request]") {
    CHECK(encode_password_request(42, "bob", "secret") == "password1\0" "42\0bob\0secret"s);
    auto back = decode_password_request(encode_password_request(42, "bob", "secret"));
    REQUIRE(back);
    CHECK(back->id == 42);
    CHECK(back->user == "bob");
    CHECK(back->password == "secret");
    // A short password still comes in a buffer of its own (core::secret_copy).
    CHECK(back->password.capacity() > 15);
}

TEST_CASE("a password request round-trips at every bound", "[password_request]") {
    for (uint64_t id : {uint64_t{0}, uint64_t{1}, uint64_t{9}, uint64_t{10}, UINT64_MAX}) {
        for (const std::string& user : {"u"s, std::string(255, 'u'), "b\xc3\xb6rje \t\x01"s}) {
            for (const std::string& password : {"p"s, std::string(1024, 'p'), " \xff\x01\r\n"s}) {
                auto back = decode_password_request(encode_password_request(id, user, password));
                REQUIRE(back);
                CHECK(back->id == id);
                CHECK(back->user == user);
                CHECK(back->password == password);
            }
        }
    }
    CHECK(encode_password_request(UINT64_MAX, std::string(255, 'u'), std::string(1024, 'p')).size() ==
          max_password_request);
}

TEST_CASE("a password request out of bounds, truncated or with a NUL in a field is refused", "[password_request]") {
    for (const std::string& bad : {
             request("1", "", "secret"), request("1", "bob", ""),                                  // empty
             request("1", std::string(256, 'u'), "secret"), request("1", "bob", std::string(1025, 'p')),  // too long
             request("", "bob", "secret"), request("01", "bob", "secret"), request("+1", "bob", "secret"),
             request("-1", "bob", "secret"), request(" 1", "bob", "secret"), request("1 ", "bob", "secret"),
             request("0x1", "bob", "secret"), request("18446744073709551616", "bob", "secret"),  // 2^64
             request("1", "b\0b"s, "secret"), request("1", "bob", "sec\0ret"s),                  // NUL in a field
             request("1", "bob", "secret") + "\0"s, request("1", "bob", "secret") + "\0extra"s,    // extra field
             "password1\0" "1\0bob"s, "password1\0" "1"s, "password1\0"s, "password1"s, ""s,        // truncated
             "password2\0" "1\0bob\0secret"s, "Password1\0" "1\0bob\0secret"s, "\0" "1\0bob\0secret"s,
             answer("1", "ok"),
         }) {
        INFO(bad.size());
        CHECK_FALSE(decode_password_request(bad));
    }
    // Every cut of a good request is refused, and so is the request with any byte more.
    const std::string good = request("123", "bob", "secret");
    for (size_t length = 0; length < good.size(); ++length) {
        auto cut = decode_password_request(good.substr(0, length));
        // Cut inside the password, the rest is a shorter but well-formed request.
        if (length > good.find("secret")) continue;
        INFO(length);
        CHECK_FALSE(cut);
    }
    CHECK_FALSE(decode_password_request(std::string(max_password_request + 1, 'x')));
}

TEST_CASE("a user and password fit a request only within the bounds", "[password_request]") {
    CHECK(fits_password_request("bob", "secret"));
    CHECK(fits_password_request(std::string(255, 'u'), std::string(1024, 'p')));
    CHECK_FALSE(fits_password_request("", "secret"));
    CHECK_FALSE(fits_password_request("bob", ""));
    CHECK_FALSE(fits_password_request(std::string(256, 'u'), "secret"));
    CHECK_FALSE(fits_password_request("bob", std::string(1025, 'p')));
    CHECK_FALSE(fits_password_request("b\0b"s, "secret"));
    CHECK_FALSE(fits_password_request("bob", "s\0"s));
}

TEST_CASE("a password answer is version, id and ok, no or tmp", "[password_request]") {
    CHECK(encode_password_answer(7, PasswordVerdict::accepted) == answer("7", "ok"));
    CHECK(encode_password_answer(7, PasswordVerdict::refused) == answer("7", "no"));
    CHECK(encode_password_answer(7, PasswordVerdict::unavailable) == answer("7", "tmp"));
    for (uint64_t id : {uint64_t{0}, uint64_t{5}, UINT64_MAX}) {
        for (auto verdict : {PasswordVerdict::accepted, PasswordVerdict::refused, PasswordVerdict::unavailable}) {
            auto back = decode_password_answer(encode_password_answer(id, verdict));
            REQUIRE(back);
            CHECK(back->first == id);
            CHECK(back->second == verdict);
        }
    }
    CHECK(encode_password_answer(UINT64_MAX, PasswordVerdict::unavailable).size() == max_password_answer);
}

TEST_CASE("a password answer in any other form is refused", "[password_request]") {
    for (const std::string& bad : {
             answer("7", "yes"), answer("7", "OK"), answer("7", ""), answer("7", "ok "), answer("7", "okay"),
             answer("", "ok"), answer("07", "ok"), answer("-7", "ok"), answer("18446744073709551616", "ok"),
             answer("7", "ok") + "\0"s, answer("7", "ok\0no"s), "password1\0" "7"s, "password1\0"s, ""s,
             "password2\0" "7\0ok"s, request("7", "bob", "ok"), std::string(max_password_answer + 1, 'x'),
         }) {
        INFO(bad.size());
        CHECK_FALSE(decode_password_answer(bad));
    }
}
