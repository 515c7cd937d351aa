// base64 and the AUTH PLAIN and LOGIN responses (smtp/sasl.hpp, RFC 4648, 4616, 4954).
#include "smtp/sasl.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <variant>

#include "core/pam_password.hpp"

using namespace mailroom::smtp;
using namespace std::string_literals;

namespace {

// The refusal of a decoder, or a failed test when it decoded.
template <typename T>
Refusal refusal_of(const std::variant<T, Refusal>& result) {
    REQUIRE(std::holds_alternative<Refusal>(result));
    return std::get<Refusal>(result);
}

void check_refusal(const Refusal& refusal, int code, const std::string& enhanced) {
    CHECK(refusal.reply_code == code);
    CHECK(refusal.status.code() == enhanced);
    CHECK(refusal.status.is_permanent());
}

SaslCredentials plain(const std::string& message) {
    auto result = decode_plain_response(encode_base64(message));
    REQUIRE(std::holds_alternative<SaslCredentials>(result));
    return std::move(std::get<SaslCredentials>(result));
}

Refusal plain_refused(const std::string& message) { return refusal_of(decode_plain_response(encode_base64(message))); }

}  // namespace

TEST_CASE("base64 encodes as RFC 4648 section 10 says", "[sasl]") {
    CHECK(encode_base64("") == "");
    CHECK(encode_base64("f") == "Zg==");
    CHECK(encode_base64("fo") == "Zm8=");
    CHECK(encode_base64("foo") == "Zm9v");
    CHECK(encode_base64("foob") == "Zm9vYg==");
    CHECK(encode_base64("fooba") == "Zm9vYmE=");
    CHECK(encode_base64("foobar") == "Zm9vYmFy");
    CHECK(encode_base64("Username:") == "VXNlcm5hbWU6");
    CHECK(encode_base64("Password:") == "UGFzc3dvcmQ6");
    CHECK(encode_base64("\xff\xfe\xfd"s) == "//79");
}

TEST_CASE("base64 decodes what it encodes, every byte and every length", "[sasl]") {
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    for (size_t length = 0; length <= all.size(); ++length) {
        std::string bytes = all.substr(all.size() - length) + all.substr(0, length / 3);
        auto back = decode_base64(encode_base64(bytes));
        REQUIRE(back);
        CHECK(*back == bytes);
    }
    CHECK(decode_base64("") == std::string());
    CHECK(decode_base64("AA==") == "\0"s);
}

TEST_CASE("base64 refuses every text that is not strict RFC 4648", "[sasl]") {
    for (std::string bad : {
             "Zg"s, "Zg="s, "Zm9"s, "Z"s, "Zm9vY"s,  // too short: a length not a multiple of 4
             "Zg=="s + "Zg=="s,                      // "=" in the middle
             "Z=9v"s, "=m9v"s, "Zm=v"s, "===="s, "Z==="s, "Zm9vYmFy===="s,
             "Zh=="s, "Zm9="s,                        // pad bits not zero
             "Zm9v YmFy"s, " Zm9v"s, "Zm9v\r\n"s, "Zm9v\t"s, "Zm9v\n"s,  // white space
             "Zm9v\0YmF"s, "Zm9\0"s,                  // NUL
             "Zm9-"s, "Zm9_"s, "Zm9*"s, "Zm9."s, "Zm\xc3\xa9"s, "Zm9\x80"s, "*"s, "="s,
         }) {
        INFO(bad);
        CHECK_FALSE(decode_base64(bad));
    }
}

TEST_CASE("base64 of 10 KB decodes whole, and 10 KB of junk is refused", "[sasl]") {
    std::string bytes(10 * 1024, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
    auto back = decode_base64(encode_base64(bytes));
    REQUIRE(back);
    CHECK(*back == bytes);
    CHECK_FALSE(decode_base64(std::string(10 * 1024, '!')));
    CHECK_FALSE(decode_base64(encode_base64(bytes) + "A"));
}

TEST_CASE("AUTH PLAIN gives the user and password, with or without an authzid equal to the user", "[sasl]") {
    auto without = plain("\0bob\0secret"s);
    CHECK(without.user == "bob");
    CHECK(without.password == "secret");
    auto with = plain("bob\0bob\0secret"s);
    CHECK(with.user == "bob");
    CHECK(with.password == "secret");
    // RFC 4616's example.
    auto example = decode_plain_response("AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    REQUIRE(std::holds_alternative<SaslCredentials>(example));
    CHECK(std::get<SaslCredentials>(example).user == "tim");
    CHECK(std::get<SaslCredentials>(example).password == "tanstaaftanstaaf");
    // Any byte but NUL in a password, spaces included.
    CHECK(plain("\0bob\0 pass word \xff"s).password == " pass word \xff"s);
}

TEST_CASE("AUTH PLAIN refuses an authzid other than the user: no proxy authorization", "[sasl]") {
    auto refusal = plain_refused("alice\0bob\0secret"s);
    check_refusal(refusal, 535, "5.7.8");
    CHECK(refusal.status.text().find("Error: authentication failed") == 0);
    check_refusal(plain_refused("Bob\0bob\0secret"s), 535, "5.7.8");
}

TEST_CASE("AUTH PLAIN refuses an empty user or password, missing or extra NULs", "[sasl]") {
    for (std::string bad : {"\0\0secret"s, "bob\0\0secret"s, "\0bob\0"s, "bob\0bob\0"s, "\0\0"s,  // empty
                            ""s, "bob"s, "bobsecret"s, "\0bobsecret"s, "bob\0secret"s,            // missing NULs
                            "\0bob\0sec\0ret"s, "\0bob\0secret\0"s, "\0\0bob\0secret"s, "\0bob\0\0secret"s}) {
        INFO(bad.size());
        check_refusal(plain_refused(bad), 535, "5.7.8");
    }
    // An empty response ("=" after AUTH PLAIN, or an empty line).
    check_refusal(refusal_of(decode_plain_response("")), 535, "5.7.8");
}

TEST_CASE("AUTH PLAIN takes a user of 255 octets and a password of 1024, and no longer", "[sasl]") {
    const std::string user(255, 'u'), password(1024, 'p');
    auto longest = plain("\0"s + user + "\0"s + password);
    CHECK(longest.user == user);
    CHECK(longest.password == password);
    check_refusal(plain_refused("\0"s + user + "u\0"s + password), 535, "5.7.8");
    check_refusal(plain_refused("\0"s + user + "\0"s + password + "p"), 535, "5.7.8");
    auto two_kb = plain_refused("\0bob\0"s + std::string(2048, 'p'));
    check_refusal(two_kb, 535, "5.7.8");
    CHECK(two_kb.status.text().find("ppp") == std::string::npos);
}

TEST_CASE("AUTH PLAIN refuses bad base64 with 501 5.5.2 and a cancel with 501 5.7.0", "[sasl]") {
    auto bad = refusal_of(decode_plain_response("AGJvYgBzZWNyZXQ"));
    check_refusal(bad, 501, "5.5.2");
    CHECK(bad.status.text() == "Error: invalid base64 data");
    check_refusal(refusal_of(decode_plain_response("AGJvYgBz ZWNyZXQ=")), 501, "5.5.2");
    auto cancel = refusal_of(decode_plain_response("*"));
    check_refusal(cancel, 501, "5.7.0");
    CHECK(cancel.status.text() == "Error: authentication aborted");
}

TEST_CASE("AUTH LOGIN decodes the user and the password steps", "[sasl]") {
    auto user = decode_login_response(encode_base64("bob"), LoginStep::user);
    REQUIRE(std::holds_alternative<std::string>(user));
    CHECK(std::get<std::string>(user) == "bob");
    auto password = decode_login_response(encode_base64("secret word"));
    REQUIRE(std::holds_alternative<std::string>(password));
    CHECK(std::get<std::string>(password) == "secret word");
    auto longest = decode_login_response(encode_base64(std::string(1024, 'p')), LoginStep::password);
    REQUIRE(std::holds_alternative<std::string>(longest));
    CHECK(std::get<std::string>(longest).size() == 1024);
}

TEST_CASE("AUTH LOGIN refuses a cancel, bad base64, an empty or overlong step and a NUL", "[sasl]") {
    check_refusal(refusal_of(decode_login_response("*")), 501, "5.7.0");
    check_refusal(refusal_of(decode_login_response("*", LoginStep::user)), 501, "5.7.0");
    check_refusal(refusal_of(decode_login_response("Ym9i=")), 501, "5.5.2");
    check_refusal(refusal_of(decode_login_response("=")), 501, "5.5.2");
    check_refusal(refusal_of(decode_login_response("")), 535, "5.7.8");
    check_refusal(refusal_of(decode_login_response("", LoginStep::user)), 535, "5.7.8");
    check_refusal(refusal_of(decode_login_response(encode_base64("b\0b"s), LoginStep::user)), 535, "5.7.8");
    check_refusal(refusal_of(decode_login_response(encode_base64("pass\0"s))), 535, "5.7.8");
    check_refusal(refusal_of(decode_login_response(encode_base64(std::string(256, 'u')), LoginStep::user)), 535,
                  "5.7.8");
    CHECK(std::holds_alternative<std::string>(
        decode_login_response(encode_base64(std::string(255, 'u')), LoginStep::user)));
    check_refusal(refusal_of(decode_login_response(encode_base64(std::string(1025, 'p')))), 535, "5.7.8");
}

TEST_CASE("a decoded password is in a buffer of its own, and wipe zeroes and empties a string", "[sasl]") {
    auto credentials = plain("\0bob\0pw"s);
    // Past the inline buffer: a move of it leaves no copy behind.
    CHECK(credentials.password.capacity() > 15);
    std::string moved = std::move(credentials.password);
    CHECK(moved == "pw");
    const char* buffer = moved.data();
    mailroom::core::wipe(moved);
    CHECK(moved.empty());
    CHECK(moved.data() == buffer);  // zeroed in place, not swapped for another buffer
    CHECK(buffer[0] == '\0');
    CHECK(buffer[1] == '\0');
}
