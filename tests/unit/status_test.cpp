// Status: the one table from outcomes to sysexits, SMTP replies, errno and log text.
#include "mail/status.hpp"

#include <sysexits.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <string>
#include <vector>

using mailroom::mail::Status;

TEST_CASE("errno maps into temporary statuses: mail is never lost for a system error", "[status]") {
    struct Row {
        int err;
        std::string code;
    };
    const std::vector<Row> table = {
        {ENOSPC, "4.3.1"}, {EDQUOT, "4.2.2"}, {EAGAIN, "4.2.0"}, {EWOULDBLOCK, "4.2.0"},
        {EACCES, "4.2.0"}, {EPERM, "4.2.0"},  {ENOMEM, "4.3.0"}, {EIO, "4.3.0"},
        {ENOENT, "4.3.0"},
    };
    for (const auto& row : table) {
        INFO("errno " << row.err);
        auto s = Status::from_errno(row.err, "write mailbox");
        CHECK(s.is_temporary());
        CHECK(s.code() == row.code);
        CHECK(s.text() == "write mailbox");
        CHECK(s.to_sysexit() == EX_TEMPFAIL);
    }
    auto from_error = Status::from_error(mailroom::core::errno_error("open /var/mail/bob", ENOSPC));
    CHECK(from_error.code() == "4.3.1");
    CHECK_THAT(from_error.text(), Catch::StartsWith("open /var/mail/bob: "));
}

TEST_CASE("mda exits 0, 67 for no such user, 75 for temporary failures", "[status]") {
    struct Row {
        Status status;
        int sysexit;
    };
    const std::vector<Row> table = {
        {Status::ok(), EX_OK},
        {Status::temp("4.2.2", "over quota"), EX_TEMPFAIL},
        {Status::temp("4.3.0", "lock timeout"), EX_TEMPFAIL},
        {Status::perm("5.1.1", "no such user"), EX_NOUSER},
        {Status::perm("5.1.2", "no such host"), EX_NOHOST},
        {Status::perm("5.1.3", "bad address"), EX_DATAERR},
        {Status::perm("5.4.6", "mail loop"), EX_DATAERR},
        {Status::perm("5.6.0", "bad message"), EX_DATAERR},
        {Status::perm("5.3.4", "too big"), EX_DATAERR},
        {Status::perm("5.7.1", "denied"), EX_NOPERM},
        {Status::perm("5.3.5", "bad config"), EX_CONFIG},
        {Status::perm("5.2.0", "cannot create"), EX_CANTCREAT},
        {Status::perm("5.0.0", "other"), EX_UNAVAILABLE},
    };
    for (const auto& row : table) {
        INFO(row.status.code());
        CHECK(row.status.to_sysexit() == row.sysexit);
    }
}

TEST_CASE("Only EX_TEMPFAIL and EX_OSERR are soft among the sysexits", "[status]") {
    CHECK(Status::from_sysexit(EX_OK, "ok").is_ok());
    CHECK(Status::from_sysexit(EX_TEMPFAIL, "later").is_temporary());
    CHECK(Status::from_sysexit(EX_OSERR, "fork").is_temporary());
    for (int code : {EX_USAGE, EX_DATAERR, EX_NOUSER, EX_NOHOST, EX_UNAVAILABLE, EX_SOFTWARE,
                     EX_CANTCREAT, EX_IOERR, EX_NOPERM, EX_CONFIG, 1, 100}) {
        INFO("exit " << code);
        CHECK(Status::from_sysexit(code, "failed").is_permanent());
    }
    CHECK(Status::from_sysexit(EX_NOUSER, "x").to_sysexit() == EX_NOUSER);
    CHECK(Status::from_sysexit(EX_DATAERR, "x").to_sysexit() == EX_DATAERR);
    CHECK(Status::from_sysexit(EX_NOPERM, "x").to_sysexit() == EX_NOPERM);
}

TEST_CASE("Statuses map to SMTP and LMTP reply codes", "[status]") {
    CHECK(Status::ok().to_reply_code() == 250);
    CHECK(Status::temp("4.3.0", "x").to_reply_code() == 451);
    CHECK(Status::temp("4.3.1", "x").to_reply_code() == 452);
    CHECK(Status::temp("4.2.2", "x").to_reply_code() == 452);
    CHECK(Status::temp("4.5.3", "x").to_reply_code() == 452);
    CHECK(Status::perm("5.1.1", "x").to_reply_code() == 550);
    CHECK(Status::perm("5.1.3", "x").to_reply_code() == 553);
    CHECK(Status::perm("5.2.2", "x").to_reply_code() == 552);
    CHECK(Status::perm("5.3.4", "x").to_reply_code() == 552);
    CHECK(Status::perm("5.7.1", "Relay access denied").to_reply_code() == 554);
    CHECK(Status::perm("5.4.6", "x").to_reply_code() == 550);
}

TEST_CASE("Log lines carry dsn= and status=", "[status]") {
    CHECK(Status::ok().to_log() == "dsn=2.0.0, status=sent (delivered)");
    CHECK(Status::temp("4.3.1", "disk full").to_log() == "dsn=4.3.1, status=deferred (disk full)");
    CHECK(Status::perm("5.1.1", "no such user").to_log() ==
          "dsn=5.1.1, status=bounced (no such user)");
}

TEST_CASE("with several users a temporary failure outranks a permanent one, which outranks success") {
    using mailroom::mail::worst_exit_code;
    CHECK(worst_exit_code(0, 0) == 0);
    CHECK(worst_exit_code(0, 67) == 67);
    CHECK(worst_exit_code(67, 0) == 67);
    CHECK(worst_exit_code(67, 65) == 67);
    CHECK(worst_exit_code(67, 75) == 75);
    CHECK(worst_exit_code(75, 67) == 75);
    CHECK(worst_exit_code(0, 75) == 75);
}
