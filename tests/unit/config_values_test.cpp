// SPEC section 2 (mailroom.conf), the values: defaults, types and their errors,
// choosing the file, `mta -n`/`-N`, and etc/mailroom.conf kept in step with the table.
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <optional>
#include <regex>
#include <set>
#include <string>

#include "core/config.hpp"
#include "core/config_keys.hpp"
#include "support/test_support.hpp"
#include "unit/config_test_helpers.hpp"

using config_test::error_of;
using config_test::parsed;
using mailroom::core::Config;
using mailroom::core::config_keys;
using mailroom::core::DefaultKind;
using namespace mailroom::test;
using namespace std::chrono_literals;

namespace {

// Sets or unsets an environment variable for one test and puts it back after.
struct EnvGuard {
    std::string name;
    std::optional<std::string> old;
    EnvGuard(std::string n, const char* value) : name(std::move(n)) {
        if (const char* v = std::getenv(name.c_str())) old = v;
        if (value) ::setenv(name.c_str(), value, 1);
        else ::unsetenv(name.c_str());
    }
    ~EnvGuard() {
        if (old) ::setenv(name.c_str(), old->c_str(), 1);
        else ::unsetenv(name.c_str());
    }
};

}  // namespace

TEST_CASE("Every key has its SPEC default") {
    auto c = Config::defaults();
    CHECK(c.str("spool_dir") == "/var/spool/mailroom");
    CHECK(c.str("aliases") == "/etc/aliases");
    CHECK(c.str("mailbox_format") == "mbox");
    CHECK(c.str("mail_spool_dir") == "/var/mail");
    CHECK(c.str("home_mailbox").empty());
    CHECK(c.list("mailbox_lock") == std::vector<std::string>{"fcntl", "dotlock"});
    CHECK(c.duration("lock_timeout") == 60s);
    CHECK(c.str("recipient_delimiter") == "+");
    CHECK(c.list("allow_mail_to_commands") == std::vector<std::string>{"alias", "forward"});
    CHECK(c.list("allow_mail_to_files") == std::vector<std::string>{"alias", "forward"});
    CHECK(c.str("default_privs") == "nobody");
    CHECK(c.duration("command_timeout") == 1h);
    CHECK(c.duration("queue_run_delay") == 5min);
    CHECK(c.duration("minimal_backoff_time") == 5min);
    CHECK(c.duration("maximal_backoff_time") == 4h);
    CHECK(c.duration("maximal_queue_lifetime") == 5 * 24h);
    CHECK(c.duration("delay_warning_time") == 4h);
    CHECK(c.size("message_size_limit") == 50u * 1024 * 1024);
    CHECK(c.list("smtpd_listen").empty());
    CHECK(c.list("submission_listen").empty());
    CHECK(c.list("smtps_listen").empty());
    CHECK(c.str("smtpd_tls_cert_file").empty());
    CHECK(c.str("smtpd_tls_key_file").empty());
    CHECK(c.str("smtpd_auth_service") == "smtp");
    CHECK(c.list("mynetworks") == std::vector<std::string>{"127.0.0.0/8", "[::1]/128"});
    CHECK(c.str("relayhost").empty());
    CHECK(c.str("smtp_tls_security_level") == "may");
    CHECK(c.str("smtp_sasl_password_file").empty());
    CHECK(c.str("local_transport") == "local");
    CHECK(c.str("lmtpd_listen") == "unix:/var/spool/mailroom/lmtp");
    CHECK(c.number("max_recipients") == 1000);
    CHECK(c.duration("smtpd_timeout") == 300s);
    CHECK(c.str("smtpd_bare_newline") == "reject");
    CHECK(c.str("log") == "syslog");
    for (const auto& k : config_keys()) CHECK(c.is_default(k.name));
}

TEST_CASE("myhostname defaults to the system host name, mydomain to it minus its first label") {
    char buf[256] = {};
    REQUIRE(::gethostname(buf, sizeof buf - 1) == 0);
    auto c = Config::defaults();
    const std::string& host = c.str("myhostname");
    REQUIRE(!host.empty());
    CHECK(host.find_first_of(" \t,") == std::string::npos);
    if (std::string(buf).find('.') != std::string::npos) CHECK(host == buf);
    size_t dot = host.find('.');
    CHECK(c.str("mydomain") == (dot == std::string::npos ? "localdomain" : host.substr(dot + 1)));
    CHECK(c.list("mydestination") ==
          std::vector<std::string>{host, "localhost." + c.str("mydomain"), "localhost"});

    CHECK(parsed("myhostname = mail.example.org").str("mydomain") == "example.org");
    CHECK(parsed("myhostname = box").str("mydomain") == "localdomain");
    auto both = parsed("myhostname = mail.example.org\nmydomain = other.example\n");
    CHECK(both.str("mydomain") == "other.example");
    CHECK(both.str("mydestination") == "mail.example.org, localhost.other.example, localhost");
}

TEST_CASE("Sizes take K/M/G (1024-based), a plain number is bytes") {
    auto size = [](std::string v) { return parsed("message_size_limit = " + v).size("message_size_limit"); };
    CHECK(size("0") == 0);
    CHECK(size("1000") == 1000);
    CHECK(size("10K") == 10240);
    CHECK(size("10k") == 10240);
    CHECK(size("50M") == 50ull << 20);
    CHECK(size("2G") == 2ull << 30);
    for (const char* bad : {"5x", "K", "-1", "1.5M", "10KB", "10 K", "99999999999999999999", "8589934592G", ""}) {
        INFO(bad);
        CHECK(error_of(std::string("message_size_limit = ") + bad) ==
              fmt::format("t.conf:1: bad value for 'message_size_limit': '{}' "
                          "(a size: number of bytes with optional K, M or G)", bad));
    }
}

TEST_CASE("Times take s/m/h/d, a plain number is seconds") {
    auto time = [](std::string v) { return parsed("lock_timeout = " + v).duration("lock_timeout"); };
    CHECK(time("30") == 30s);
    CHECK(time("30s") == 30s);
    CHECK(time("5m") == 5min);
    CHECK(time("4h") == 4h);
    CHECK(time("5d") == 120h);
    CHECK(parsed("delay_warning_time = 0").duration("delay_warning_time") == 0s);
    for (const char* bad : {"5x", "1w", "", "1.5h", "m", "-5s", "5 m", "99999999999999999d"}) {
        INFO(bad);
        CHECK(error_of(std::string("lock_timeout = ") + bad) ==
              fmt::format("t.conf:1: bad value for 'lock_timeout': '{}' (a time: number with s, m, h or d)", bad));
    }
}

TEST_CASE("A bad value is an error naming file, line and key") {
    // The value is checked after expansion, and the line is the key's own line.
    CHECK(error_of("# comment\n\ndefault_privs = 5\nlock_timeout = ${default_privs}x\n") ==
          "t.conf:4: bad value for 'lock_timeout': '5x' (a time: number with s, m, h or d)");
    struct Case { const char* line; const char* message; };
    const Case cases[] = {
        {"mailbox_format = mh", "bad value for 'mailbox_format': 'mh' (mbox or maildir)"},
        {"smtpd_bare_newline = fix", "bad value for 'smtpd_bare_newline': 'fix' (reject or normalize)"},
        {"smtp_tls_security_level = dane",
         "bad value for 'smtp_tls_security_level': 'dane' (none, may or encrypt)"},
        {"mailbox_lock = flock", "bad value for 'mailbox_lock': 'flock' "
                                 "(a list of fcntl and dotlock, each at most once, at least one)"},
        {"mailbox_lock = fcntl, fcntl", "bad value for 'mailbox_lock': 'fcntl, fcntl' "
                                        "(a list of fcntl and dotlock, each at most once, at least one)"},
        {"mailbox_lock =", "bad value for 'mailbox_lock': '' "
                           "(a list of fcntl and dotlock, each at most once, at least one)"},
        {"allow_mail_to_files = alias, aliases", "bad value for 'allow_mail_to_files': 'alias, aliases' "
                                                 "(a list of alias, forward and include, possibly empty)"},
        {"allow_mail_to_commands = all", "bad value for 'allow_mail_to_commands': 'all' "
                                         "(a list of alias, forward and include, possibly empty)"},
        {"local_transport = lmtp", "bad value for 'local_transport': 'lmtp' "
                                   "(local, lmtp:unix:PATH or lmtp:inet:HOST:PORT)"},
        {"local_transport = lmtp:unix:", "bad value for 'local_transport': 'lmtp:unix:' "
                                         "(local, lmtp:unix:PATH or lmtp:inet:HOST:PORT)"},
        {"local_transport = lmtp:inet:host", "bad value for 'local_transport': 'lmtp:inet:host' "
                                             "(local, lmtp:unix:PATH or lmtp:inet:HOST:PORT)"},
        {"local_transport = lmtp:inet:host:99999", "bad value for 'local_transport': 'lmtp:inet:host:99999' "
                                                   "(local, lmtp:unix:PATH or lmtp:inet:HOST:PORT)"},
        {"log = mail.log", "bad value for 'log': 'mail.log' (syslog, stderr or an absolute file path)"},
        {"max_recipients = 1K", "bad value for 'max_recipients': '1K' (a number)"},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        CHECK(error_of(std::string("\n") + c.line + "\n") == std::string("t.conf:2: ") + c.message);
    }
    // Long values are cut in the error line.
    CHECK(error_of("log = " + std::string(500, 'x')) ==
          "t.conf:1: bad value for 'log': '" + std::string(100, 'x') +
              "...' (syslog, stderr or an absolute file path)");
}

TEST_CASE("A path key is an absolute path: empty or relative is an error naming file, line and key") {
    // An empty spool_dir used to load and fail later with 75 at the first open; a
    // relative one would resolve against whatever the current folder is.
    for (const char* key : {"spool_dir", "aliases", "mail_spool_dir"}) {
        INFO(key);
        CHECK(error_of(fmt::format("\n{} =\n", key)) ==
              fmt::format("t.conf:2: bad value for '{}': '' (an absolute path)", key));
        CHECK(error_of(fmt::format("{} = var/spool\n", key)) ==
              fmt::format("t.conf:1: bad value for '{}': 'var/spool' (an absolute path)", key));
        CHECK(parsed(fmt::format("{} = /srv/x\n", key)).str(key) == "/srv/x");
    }
    // Checked after expansion: an empty key expanded into a path key is caught too.
    CHECK(error_of("recipient_delimiter =\nspool_dir = ${recipient_delimiter}spool\n") ==
          "t.conf:2: bad value for 'spool_dir': 'spool' (an absolute path)");
    // Keys whose empty value turns a feature off may stay empty, but when set are absolute.
    for (const char* key : {"smtpd_tls_cert_file", "smtpd_tls_key_file", "smtp_sasl_password_file"}) {
        INFO(key);
        CHECK(parsed(fmt::format("{} =\n", key)).str(key).empty());
        CHECK(parsed(fmt::format("{} = /etc/ssl/x.pem\n", key)).str(key) == "/etc/ssl/x.pem");
        CHECK(error_of(fmt::format("{} = x.pem\n", key)) ==
              fmt::format("t.conf:1: bad value for '{}': 'x.pem' (empty or an absolute path)", key));
    }
    CHECK(error_of("log =\n") == "t.conf:1: bad value for 'log': '' (syslog, stderr or an absolute file path)");
    // home_mailbox is relative to the user's home by design.
    CHECK(parsed("home_mailbox = Maildir/\n").str("home_mailbox") == "Maildir/");
}

TEST_CASE("Good values of every checked type are accepted") {
    auto c = parsed("mailbox_format = maildir\nsmtpd_bare_newline = normalize\n"
                    "smtp_tls_security_level = encrypt\nmailbox_lock = dotlock\n"
                    "allow_mail_to_commands =\nallow_mail_to_files = include alias,forward\n"
                    "log = /var/log/mailroom.log\nmax_recipients = 0\n"
                    "smtpd_listen = 127.0.0.1:25, [::1]:25\n");
    CHECK(c.list("allow_mail_to_commands").empty());
    CHECK(c.list("smtpd_listen") == std::vector<std::string>{"127.0.0.1:25", "[::1]:25"});
    for (const char* t : {"local", "lmtp:unix:/run/lmtp", "lmtp:inet:127.0.0.1:24", "lmtp:inet:[::1]:24"})
        CHECK(parsed(std::string("local_transport = ") + t).str("local_transport") == t);
    CHECK(parsed("log = stderr").str("log") == "stderr");
}

TEST_CASE("the configuration file is -C FILE, else MAILROOM_CONF when set, else $PREFIX/etc/mailroom/mailroom.conf") {
    {
        EnvGuard env("MAILROOM_CONF", "/env/mailroom.conf");
        CHECK(Config::choose_source("/c/mailroom.conf")->path == "/c/mailroom.conf");
        CHECK(Config::choose_source("")->path == "/env/mailroom.conf");
    }
    {
        EnvGuard env("MAILROOM_CONF", nullptr);
        CHECK(Config::choose_source("")->path == MAILROOM_SYSCONFDIR "/mailroom.conf");
    }
    {
        EnvGuard env("MAILROOM_CONF", "");  // set but empty counts as unset
        CHECK(Config::choose_source("")->path == MAILROOM_SYSCONFDIR "/mailroom.conf");
    }
}

TEST_CASE("etc/mailroom.conf lists every key, commented out at its default under its doc, and nothing else") {
    std::string text = slurp(MAILROOM_SOURCE_DIR "/etc/mailroom.conf");
    REQUIRE(!text.empty());
    const std::vector<std::string> lines = lines_of(text);

    const std::regex key_line(R"(^# ?([A-Za-z0-9_]+) *=.*$)");
    std::set<std::string> seen;
    for (size_t i = 0; i < lines.size(); ++i) {
        std::smatch m;
        if (!std::regex_match(lines[i], m, key_line)) continue;
        std::string name = m[1];
        INFO("line " << i + 1 << ": " << lines[i]);
        auto index = mailroom::core::config_key_index(name);
        REQUIRE(index);  // nothing that is not a key
        CHECK(seen.insert(name).second);
        const auto& key = config_keys()[*index];
        if (key.default_kind == DefaultKind::literal)
            CHECK(lines[i] == "# " + name + " =" + (key.default_value.empty() ? "" : " ") +
                                  std::string(key.default_value));
        REQUIRE(i > 0);
        CHECK(lines[i - 1] == "# " + std::string(key.doc));
    }
    for (const auto& k : config_keys()) CHECK(seen.count(std::string(k.name)) == 1);
}

TEST_CASE("etc/mailroom.conf as shipped gives the defaults, and its values are all valid") {
    auto shipped = Config::load(MAILROOM_SOURCE_DIR "/etc/mailroom.conf");
    REQUIRE(shipped);
    CHECK(shipped->dump(false).empty());

    std::string uncommented;
    const std::regex key_line(R"(^# ([a-z_]+ =.*)$)");
    for (const std::string& l : lines_of(slurp(MAILROOM_SOURCE_DIR "/etc/mailroom.conf"))) {
        std::smatch m;
        if (std::regex_match(l, m, key_line)) uncommented += m[1].str() + "\n";
    }
    auto c = parsed(uncommented);
    CHECK(c.dump(false) == "myhostname = host.example.com\n");  // mydomain follows it
    CHECK(c.str("mydomain") == "example.com");
}

TEST_CASE("mta -n prints the keys that differ from the defaults, mta -N every key") {
    CHECK(Config::defaults().dump(false).empty());
    auto c = parsed("spool_dir = /var/spool/mailroom\n"  // the default text: not printed
                    "lock_timeout = 2m\n"
                    "mynetworks = 10.0.0.0/8,\n  192.168.0.0/16\n"
                    "mail_spool_dir = $spool_dir/boxes\n");
    CHECK(!c.is_default("lock_timeout"));
    CHECK(c.is_default("spool_dir"));
    CHECK(c.dump(false) ==
          "mail_spool_dir = $spool_dir/boxes\n"
          "lock_timeout = 2m\n"
          "mynetworks = 10.0.0.0/8, 192.168.0.0/16\n");

    std::string all = c.dump(true);
    CHECK(std::count(all.begin(), all.end(), '\n') == static_cast<long>(config_keys().size()));
    CHECK(all.find("\nlock_timeout = 2m\n") != std::string::npos);
    CHECK(all.find("\nsmtpd_listen =\n") != std::string::npos);
    CHECK(all.find("\nmydestination = $myhostname, localhost.$mydomain, localhost\n") != std::string::npos);
    CHECK(all.starts_with("myhostname = " + c.str("myhostname") + "\n"));
    // What -N prints reads back as the same configuration.
    auto again = parsed(all);
    CHECK(again.dump(true) == all);
    CHECK(again.str("mail_spool_dir") == "/var/spool/mailroom/boxes");
}

TEST_CASE("a file named by -C must exist, a missing built-in default means all defaults") {
    auto missing = mailroom::core::Config::load_for_program({"/nonexistent/mailroom.conf", true});
    REQUIRE_FALSE(missing);
    CHECK_THAT(missing.error().message(), Catch::Contains("/nonexistent/mailroom.conf"));
    EnvGuard env("MAILROOM_CONF", nullptr);
    if (::access(MAILROOM_SYSCONFDIR "/mailroom.conf", F_OK) != 0) {
        auto fallback = mailroom::core::Config::load_for_program(*mailroom::core::Config::choose_source(""));
        REQUIRE(fallback);
        CHECK(fallback->str("mailbox_format") == "mbox");
    }
}

TEST_CASE("myhostname and mydomain must be host names") {
    for (const char* bad : {"myhostname = two words", "myhostname = a..b", "myhostname = .a", "myhostname = a.",
                            "mydomain = x@y", "myhostname = $$host", "myhostname = a,b"}) {
        auto config = mailroom::core::Config::parse(std::string(bad) + "\n", "main.conf");
        INFO(bad);
        REQUIRE_FALSE(config);
        CHECK_THAT(config.error().message(), Catch::StartsWith("main.conf:1: bad value for 'my"));
    }
    for (const char* good : {"myhostname = mx1.example.org", "myhostname = My_Host", "mydomain = example"}) {
        INFO(good);
        CHECK(mailroom::core::Config::parse(std::string(good) + "\n", "main.conf"));
    }
}
