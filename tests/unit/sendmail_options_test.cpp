// sendmail's command line (SPEC 1, "sendmail"): one case per row of the option table,
// the lines real callers send, and the usage errors.
#include "mail/sendmail_options.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using mailroom::mail::DeliveryMode;
using mailroom::mail::parse_sendmail_options;
using mailroom::mail::SendmailMode;
using mailroom::mail::SendmailOptions;
using Args = std::vector<std::string>;

namespace {

SendmailOptions parse(const Args& args) {
    auto o = parse_sendmail_options(args);
    INFO((o ? std::string() : o.error().message()));
    REQUIRE(o);
    return *o;
}

std::string error_of(const Args& args) {
    auto o = parse_sendmail_options(args);
    REQUIRE_FALSE(o);
    CHECK(o.error().code == std::error_code());  // an input error: the caller exits 64
    return o.error().message();
}

}  // namespace

TEST_CASE("Without options sendmail delivers in the background to the operands", "[sendmail_options]") {
    auto o = parse({"bob", "alice@example.org"});
    CHECK(o.mode == SendmailMode::deliver);
    CHECK(o.delivery == DeliveryMode::background);
    CHECK_FALSE(o.recipients_from_headers);
    CHECK(o.dot_ends_message);
    CHECK_FALSE(o.sender);
    CHECK_FALSE(o.full_name);
    CHECK_FALSE(o.verbose);
    CHECK_FALSE(o.config_file);
    CHECK_FALSE(o.queue_interval);
    CHECK(o.recipients == Args{"bob", "alice@example.org"});
    CHECK(parse({}).recipients.empty());
}

TEST_CASE("The -t option takes recipients also from the headers", "[sendmail_options]") {
    auto o = parse({"-t"});
    CHECK(o.recipients_from_headers);
    CHECK(o.recipients.empty());
    CHECK(parse({"-t", "extra@example.org"}).recipients == Args{"extra@example.org"});
}

TEST_CASE("With -i or -oi a single dot does not end the message", "[sendmail_options]") {
    CHECK_FALSE(parse({"-i", "bob"}).dot_ends_message);
    CHECK_FALSE(parse({"-oi", "bob"}).dot_ends_message);
    CHECK_FALSE(parse({"-o", "i", "bob"}).dot_ends_message);
    CHECK(parse({"bob"}).dot_ends_message);
}

TEST_CASE("The -f and -r options set the envelope sender, attached or separate", "[sendmail_options]") {
    CHECK(parse({"-f", "me@example.org", "bob"}).sender == "me@example.org");
    CHECK(parse({"-fme@example.org", "bob"}).sender == "me@example.org");
    CHECK(parse({"-r", "me@example.org", "bob"}).sender == "me@example.org");
    CHECK(parse({"-rme@example.org", "bob"}).sender == "me@example.org");
    SECTION("the null sender is given as <> or an empty word, and kept as given") {
        CHECK(parse({"-f", "<>", "bob"}).sender == "<>");
        CHECK(parse({"-f", "", "bob"}).sender == "");
        CHECK(parse({"-f<>", "bob"}).sender == "<>");
    }
    SECTION("the last one wins") {
        CHECK(parse({"-f", "a@x", "-r", "b@x", "bob"}).sender == "b@x");
    }
}

TEST_CASE("The -F option gives the full name, attached or separate", "[sendmail_options]") {
    CHECK(parse({"-FCronDaemon", "bob"}).full_name == "CronDaemon");
    CHECK(parse({"-F", "Cron Daemon", "bob"}).full_name == "Cron Daemon");
    CHECK(parse({"-F", "", "bob"}).full_name == "");
}

TEST_CASE("The -b options choose the mode", "[sendmail_options]") {
    CHECK(parse({"-bm", "bob"}).mode == SendmailMode::deliver);
    CHECK(parse({"-bp"}).mode == SendmailMode::list_queue);
    CHECK(parse({"-bi"}).mode == SendmailMode::rebuild_aliases);
    CHECK(parse({"-I"}).mode == SendmailMode::rebuild_aliases);
    CHECK(parse({"-bs"}).mode == SendmailMode::smtp_session);
    CHECK(parse({"-bd"}).mode == SendmailMode::daemon);
    CHECK(parse({"-b", "p"}).mode == SendmailMode::list_queue);
    SECTION("-bv verifies the recipients") {
        auto o = parse({"-bv", "bob", "alice@example.org"});
        CHECK(o.mode == SendmailMode::verify);
        CHECK(o.recipients == Args{"bob", "alice@example.org"});
    }
    SECTION("the last mode wins") {
        CHECK(parse({"-bp", "-bm", "bob"}).mode == SendmailMode::deliver);
    }
}

TEST_CASE("The -q option runs the queue once, -qINTERVAL gives the runner's interval", "[sendmail_options]") {
    auto once = parse({"-q"});
    CHECK(once.mode == SendmailMode::run_queue);
    CHECK_FALSE(once.queue_interval);
    CHECK(parse({"-q30m"}).queue_interval == std::chrono::seconds(1800));
    CHECK(parse({"-q30m"}).mode == SendmailMode::run_queue);
    CHECK(parse({"-q1h"}).queue_interval == std::chrono::seconds(3600));
    CHECK(parse({"-q45s"}).queue_interval == std::chrono::seconds(45));
    CHECK(parse({"-q1d"}).queue_interval == std::chrono::seconds(86400));
    CHECK(parse({"-q1w"}).queue_interval == std::chrono::seconds(7 * 86400));
    CHECK(parse({"-q1h30m"}).queue_interval == std::chrono::seconds(5400));
    CHECK(parse({"-q15"}).queue_interval == std::chrono::seconds(900));  // minutes, as sendmail
    CHECK(parse({"-q1m30"}).queue_interval == std::chrono::seconds(1860));
    SECTION("-q never takes the next word as its value") {
        auto o = parse({"-q", "bob"});
        CHECK_FALSE(o.queue_interval);
        CHECK(o.recipients == Args{"bob"});
    }
    SECTION("with -bd the mode stays daemon, in either order") {
        auto a = parse({"-bd", "-q30m"});
        CHECK(a.mode == SendmailMode::daemon);
        CHECK(a.queue_interval == std::chrono::seconds(1800));
        auto b = parse({"-q1h", "-bd"});
        CHECK(b.mode == SendmailMode::daemon);
        CHECK(b.queue_interval == std::chrono::seconds(3600));
    }
}

TEST_CASE("The -od options choose when delivery happens", "[sendmail_options]") {
    CHECK(parse({"-odi", "bob"}).delivery == DeliveryMode::interactive);
    CHECK(parse({"-odb", "bob"}).delivery == DeliveryMode::background);
    CHECK(parse({"-odq", "bob"}).delivery == DeliveryMode::queue_only);
    CHECK(parse({"-odd", "bob"}).delivery == DeliveryMode::queue_only);
    CHECK(parse({"-o", "di", "bob"}).delivery == DeliveryMode::interactive);
    CHECK(parse({"-odq", "-odi", "bob"}).delivery == DeliveryMode::interactive);
}

TEST_CASE("The -v option asks for a verbose report", "[sendmail_options]") {
    CHECK(parse({"-v", "bob"}).verbose);
    CHECK(parse({"-v", "-v", "bob"}).verbose);
}

TEST_CASE("The -C option names the configuration file", "[sendmail_options]") {
    CHECK(parse({"-C", "/etc/x.conf", "bob"}).config_file == "/etc/x.conf");
    CHECK(parse({"-C/etc/x.conf", "bob"}).config_file == "/etc/x.conf");
}

TEST_CASE("The DSN options -N, -R and -V are kept", "[sendmail_options]") {
    auto o = parse({"-N", "success,failure,delay", "-R", "hdrs", "-V", "env-1", "bob"});
    CHECK(o.dsn_notify == "success,failure,delay");
    CHECK(o.dsn_ret == "hdrs");
    CHECK(o.dsn_envid == "env-1");
    auto attached = parse({"-Nnever", "-Rfull", "-Venv2", "bob"});
    CHECK(attached.dsn_notify == "never");
    CHECK(attached.dsn_ret == "full");
    CHECK(attached.dsn_envid == "env2");
}

TEST_CASE("Compatibility options are accepted and ignored, with their values", "[sendmail_options]") {
    const std::vector<Args> lines = {
        {"-B8BITMIME", "bob"}, {"-B", "7BIT", "bob"}, {"-BBINARYMIME", "bob"},
        {"-G", "bob"},         {"-U", "bob"},         {"-L", "cron", "bob"},
        {"-Lcron", "bob"},     {"-X", "/tmp/log", "bob"}, {"-X/tmp/log", "bob"},
        {"-oem", "bob"},       {"-oee", "bob"},       {"-om", "bob"},
        {"-obq", "bob"},       {"-oA/etc/aliases", "bob"}, {"-O", "DeliveryMode=b", "bob"},
        {"-ODeliveryMode=b", "bob"}, {"-m", "bob"},   {"-Am", "bob"},
        {"-c", "bob"},         {"-x", "bob"},         {"-eq", "bob"},
        {"-pESMTP", "bob"},    {"-h", "30", "bob"},   {"-h30", "bob"},
    };
    for (const auto& line : lines) {
        INFO(line.front());
        auto o = parse(line);
        CHECK(o.mode == SendmailMode::deliver);
        CHECK(o.delivery == DeliveryMode::background);
        CHECK(o.dot_ends_message);
        CHECK(o.recipients == Args{"bob"});
    }
}

TEST_CASE("Option letters cluster as getopt allows", "[sendmail_options]") {
    auto o = parse({"-ti", "-vfme@x", "bob"});
    CHECK(o.recipients_from_headers);
    CHECK_FALSE(o.dot_ends_message);
    CHECK(o.verbose);
    CHECK(o.sender == "me@x");
    auto separate = parse({"-tf", "me@x"});
    CHECK(separate.sender == "me@x");
    CHECK(separate.recipients.empty());
}

TEST_CASE("Two dashes end the options: a later word starting with a dash is an address", "[sendmail_options]") {
    auto o = parse({"-oi", "--", "-t", "-c@d"});
    CHECK_FALSE(o.recipients_from_headers);
    CHECK(o.recipients == Args{"-t", "-c@d"});
    CHECK(parse({"--"}).recipients.empty());
    CHECK(parse({"--", "--"}).recipients == Args{"--"});
}

TEST_CASE("The first operand ends the options, as Postfix's sendmail reads them", "[sendmail_options]") {
    auto o = parse({"-i", "bob", "-t", "-f", "x"});
    CHECK_FALSE(o.recipients_from_headers);
    CHECK_FALSE(o.sender);
    CHECK(o.recipients == Args{"bob", "-t", "-f", "x"});
    SECTION("a lone dash is an operand") {
        CHECK(parse({"-", "-t"}).recipients == Args{"-", "-t"});
    }
    SECTION("a value that starts with a dash is still the value") {
        auto v = parse({"-f", "-weird@x", "bob"});
        CHECK(v.sender == "-weird@x");
        CHECK(v.recipients == Args{"bob"});
    }
}

TEST_CASE("Help and version are asked with --help, -h and --version", "[sendmail_options]") {
    CHECK(parse({"--help"}).mode == SendmailMode::help);
    CHECK(parse({"-h"}).mode == SendmailMode::help);
    CHECK(parse({"-help"}).mode == SendmailMode::help);
    CHECK(parse({"-h", "bob"}).mode == SendmailMode::help);
    CHECK(parse({"--version"}).mode == SendmailMode::version);
    CHECK(parse({"-bp", "--help"}).mode == SendmailMode::help);
    CHECK(parse({"--version", "-bd"}).mode == SendmailMode::version);
    CHECK(parse({"--help", "--version"}).mode == SendmailMode::help);
}

TEST_CASE("Cron's line parses", "[sendmail_options]") {
    auto o = parse({"-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"});
    CHECK(o.mode == SendmailMode::deliver);
    CHECK(o.full_name == "CronDaemon");
    CHECK_FALSE(o.dot_ends_message);
    CHECK(o.delivery == DeliveryMode::interactive);
    CHECK(o.recipients_from_headers);
    CHECK(o.sender == "root");
    CHECK(o.recipients.empty());
    auto with_mime = parse({"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-oi", "-t", "-f", "root"});
    CHECK(with_mime.recipients_from_headers);
    CHECK(with_mime.recipients.empty());
}

TEST_CASE("Mutt's line parses", "[sendmail_options]") {
    auto o = parse({"-oem", "-oi", "--", "a@b", "-c@d"});
    CHECK_FALSE(o.dot_ends_message);
    CHECK(o.recipients == Args{"a@b", "-c@d"});
}

TEST_CASE("Git send-email's line parses", "[sendmail_options]") {
    auto o = parse({"-i", "-f", "me@x", "a@b"});
    CHECK_FALSE(o.dot_ends_message);
    CHECK(o.sender == "me@x");
    CHECK(o.recipients == Args{"a@b"});
    CHECK(parse({"-i", "a@b", "c@d"}).recipients == Args{"a@b", "c@d"});
}

TEST_CASE("PHP mail()'s line parses", "[sendmail_options]") {
    auto o = parse({"-t", "-i", "-fme@x"});
    CHECK(o.recipients_from_headers);
    CHECK_FALSE(o.dot_ends_message);
    CHECK(o.sender == "me@x");
    CHECK(o.recipients.empty());
}

TEST_CASE("An unknown option is a usage error that names it", "[sendmail_options]") {
    CHECK(error_of({"-Z", "bob"}) == "unknown option -Z");
    CHECK(error_of({"-tZ", "bob"}) == "unknown option -Z");
    CHECK(error_of({"--frobnicate"}) == "unknown option --frobnicate");
    CHECK(error_of({"-n", "bob"}) == "unknown option -n");
}

TEST_CASE("An option without its value is a usage error", "[sendmail_options]") {
    CHECK(error_of({"-f"}) == "option -f needs a value");
    CHECK(error_of({"-t", "-F"}) == "option -F needs a value");
    CHECK(error_of({"-C"}) == "option -C needs a value");
    CHECK(error_of({"-b"}) == "option -b needs a value");
    CHECK(error_of({"-B"}) == "option -B needs a value");
    CHECK(error_of({"-X"}) == "option -X needs a value");
    CHECK(error_of({"-L"}) == "option -L needs a value");
    CHECK(error_of({"-N"}) == "option -N needs a value");
    CHECK(error_of({"-o"}) == "option -o needs a value");
}

TEST_CASE("Unsupported modes and queue options are usage errors", "[sendmail_options]") {
    CHECK(error_of({"-bt"}) == "option -bt is not supported");
    CHECK(error_of({"-bmx"}) == "option -bmx is not supported");
    CHECK(error_of({"-qRexample.org"}) == "option -qRexample.org is not supported");
    CHECK(error_of({"-qf"}) == "option -qf is not supported");
    CHECK_THAT(error_of({"-q30x"}), Catch::Contains("bad queue interval in -q30x"));
    CHECK_THAT(error_of({"-q0"}), Catch::Contains("bad queue interval"));
    CHECK_THAT(error_of({"-q99999999999999999999"}), Catch::Contains("bad queue interval"));
}
