#include "core/sysexits.hpp"

#include <sysexits.h>

#include <catch2/catch.hpp>
#include <string_view>

namespace sx = mailroom::core::sysexit;
using mailroom::core::sysexit_name;

static_assert(sx::ok == EX_OK && sx::usage == EX_USAGE && sx::data_error == EX_DATAERR);
static_assert(sx::no_input == EX_NOINPUT && sx::no_user == EX_NOUSER && sx::no_host == EX_NOHOST);
static_assert(sx::unavailable == EX_UNAVAILABLE && sx::software == EX_SOFTWARE);
static_assert(sx::os_error == EX_OSERR && sx::os_file == EX_OSFILE && sx::cant_create == EX_CANTCREAT);
static_assert(sx::io_error == EX_IOERR && sx::temp_fail == EX_TEMPFAIL && sx::protocol == EX_PROTOCOL);
static_assert(sx::no_permission == EX_NOPERM && sx::config == EX_CONFIG);

TEST_CASE("exit codes carry their sysexits.h names for messages", "[sysexits]") {
    CHECK(std::string_view(sysexit_name(EX_TEMPFAIL)) == "EX_TEMPFAIL");
    CHECK(std::string_view(sysexit_name(EX_NOUSER)) == "EX_NOUSER");
    CHECK(std::string_view(sysexit_name(0)) == "EX_OK");
    CHECK(std::string_view(sysexit_name(EX_CONFIG)) == "EX_CONFIG");
}

TEST_CASE("an exit code outside sysexits.h is named EX_UNKNOWN", "[sysexits]") {
    CHECK(std::string_view(sysexit_name(1)) == "EX_UNKNOWN");
    CHECK(std::string_view(sysexit_name(-1)) == "EX_UNKNOWN");
    CHECK(std::string_view(sysexit_name(79)) == "EX_UNKNOWN");
}
