// mailctl check (spool owners, modes, links, aliases database) and mailctl trace:
// SPEC sections 1 and 3, docs/spool.md, docs/mailq.md.
#include "queue/spool_check.hpp"

#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "queue/spool.hpp"
#include "support/test_support.hpp"

using namespace mailroom;
using namespace mailroom::mail;
using mailroom::test::TempDir;

namespace {

struct CheckHarness {
    TempDir tmp;
    std::string dir = tmp.path + "/spool";
    Spool spool = std::move(*Spool::open(dir));

    std::string submit() {
        auto writer = QueueWriter::begin(spool);
        REQUIRE(writer);
        REQUIRE(writer->write("Subject: test\n\nhello\n"));
        REQUIRE(writer->commit(Envelope{"alice@host.example", {"x@far.example"}, 1000, 1'795'292'614'000'000ull}));
        return writer->id();
    }
    std::vector<CheckFinding> check() const { return check_spool(dir); }
};

std::string texts(const std::vector<CheckFinding>& findings) {
    std::string all;
    for (const auto& finding : findings) all += finding.text + "\n";
    return all;
}

}  // namespace

TEST_CASE("mailctl check finds a fresh spool with queued mail sound", "[check]") {
    CheckHarness h;
    h.submit();
    auto findings = h.check();
    INFO(texts(findings));
    CHECK(findings.empty());
    CHECK(check_exit_code(findings) == 0);
}

TEST_CASE("mailctl check reports a queue folder with the wrong mode (exit 77)", "[check]") {
    CheckHarness h;
    REQUIRE(::chmod((h.dir + "/queue").c_str(), 0755) == 0);
    auto findings = h.check();
    REQUIRE(findings.size() == 1);
    CHECK(findings[0].text == h.dir + "/queue has mode 0755, not 0700");
    CHECK(check_exit_code(findings) == 77);
}

TEST_CASE("mailctl check reports a group-writable spool_dir and a trigger that is not 0600", "[check]") {
    CheckHarness h;
    REQUIRE(::chmod(h.dir.c_str(), 0775) == 0);
    REQUIRE(::chmod((h.dir + "/trigger").c_str(), 0666) == 0);
    auto all = texts(h.check());
    CHECK(all.find("spool_dir " + h.dir + " has mode 0775, not 0755 or stricter") != std::string::npos);
    CHECK(all.find(h.dir + "/trigger has mode 0666, not 0600") != std::string::npos);
}

TEST_CASE("mailctl check reports queue files with the wrong mode or a second link", "[check]") {
    CheckHarness h;
    auto loose = h.submit();
    auto linked = h.submit();
    std::string loose_path = h.spool.entry_path(QueueFolder::queue, loose);
    std::string linked_path = h.spool.entry_path(QueueFolder::queue, linked);
    REQUIRE(::chmod(loose_path.c_str(), 0644) == 0);
    REQUIRE(::link(linked_path.c_str(), (h.tmp.path + "/stolen").c_str()) == 0);
    auto findings = h.check();
    auto all = texts(findings);
    CHECK(all.find(loose_path + " has mode 0644, not 0600") != std::string::npos);
    CHECK(all.find(linked_path + " has 2 links, not 1") != std::string::npos);
    CHECK(check_exit_code(findings) == 77);
}

TEST_CASE("mailctl check lists at most ten bad files of a folder, then counts the rest", "[check]") {
    CheckHarness h;
    for (int i = 0; i < 13; ++i) REQUIRE(::chmod(h.spool.entry_path(QueueFolder::queue, h.submit()).c_str(), 0640) == 0);
    auto findings = h.check();
    REQUIRE(findings.size() == 11);
    CHECK(findings.back().text == "3 more files in " + h.dir + "/queue with a wrong kind, owner, mode or link count");
}

TEST_CASE("mailctl check reports a missing folder or trigger (exit 73)", "[check]") {
    CheckHarness h;
    REQUIRE(::rmdir((h.dir + "/hold").c_str()) == 0);
    REQUIRE(::unlink((h.dir + "/trigger").c_str()) == 0);
    auto findings = h.check();
    auto all = texts(findings);
    CHECK(all.find(h.dir + "/hold is missing") != std::string::npos);
    CHECK(all.find(h.dir + "/trigger is missing") != std::string::npos);
    CHECK(check_exit_code(findings) == 73);
    CHECK(check_exit_code(check_spool(h.tmp.path + "/nowhere")) == 73);
}

TEST_CASE("mailctl check warns about entries in quarantine without failing", "[check]") {
    CheckHarness h;
    REQUIRE(h.spool.quarantine(h.submit(), QueueFolder::queue));
    auto findings = h.check();
    REQUIRE(findings.size() == 1);
    CHECK(findings[0].severity == CheckFinding::Severity::warning);
    CHECK(findings[0].text.rfind("1 entry in quarantine", 0) == 0);
    CHECK(check_exit_code(findings) == 0);
}

TEST_CASE("mailctl check: an aliases database older than its source is stale (exit 78), a missing one a warning",
          "[check]") {
    TempDir tmp;
    std::string aliases = tmp.write("aliases", "postmaster: root\n");
    auto missing = check_aliases(aliases);
    REQUIRE(missing.size() == 1);
    CHECK(missing[0].severity == CheckFinding::Severity::warning);
    CHECK(check_exit_code(missing) == 0);

    tmp.write("aliases.cdb", "cdb");
    mailroom::test::age(aliases + ".cdb", std::chrono::seconds(60));
    auto stale = check_aliases(aliases);
    REQUIRE(stale.size() == 1);
    CHECK(stale[0].text == "aliases database " + aliases + ".cdb is older than " + aliases + ": run newaliases");
    CHECK(check_exit_code(stale) == 78);

    mailroom::test::age(aliases, std::chrono::seconds(120));
    CHECK(check_aliases(aliases).empty());
    CHECK(check_aliases(tmp.path + "/none").empty());
}

TEST_CASE("a world-writable mail folder is a warning naming it and Debian's root:mail 2775") {
    TempDir tmp;
    std::string mail = tmp.path + "/mail";
    REQUIRE(::mkdir(mail.c_str(), 0755) == 0);
    for (mode_t sound : {0755, 02775, 0700}) {
        REQUIRE(::chmod(mail.c_str(), sound) == 0);
        CHECK(check_mail_folder(mail).empty());
    }
    REQUIRE(::chmod(mail.c_str(), 01777) == 0);
    auto sticky = check_mail_folder(mail);
    REQUIRE(sticky.size() == 1);
    CHECK(sticky[0].severity == CheckFinding::Severity::warning);
    CHECK(sticky[0].text == "mail_spool_dir " + mail + " is world-writable (mode 1777): any user can create files "
                            "beside another user's mailbox; Debian uses root:mail 2775 instead (chown root:mail, "
                            "chmod 2775; deliveries then run with group mail)");
    CHECK(check_exit_code(sticky) == 0);  // a warning never changes mailctl's exit code
    REQUIRE(::chmod(mail.c_str(), 0777) == 0);
    auto open = check_mail_folder(mail);
    REQUIRE(open.size() == 1);
    CHECK(open[0].text.find("(mode 0777)") != std::string::npos);
    CHECK(open[0].text.find("without the sticky bit any user can also remove or rename") != std::string::npos);
    CHECK(check_exit_code(open) == 0);
    CHECK(check_mail_folder(tmp.path + "/missing").empty());
}

TEST_CASE("with home_mailbox an mbox, a world-writable folder holding a user's mailbox is a warning", "[check]") {
    TempDir tmp;
    std::string bob = tmp.path + "/bob", carol = tmp.path + "/carol";
    REQUIRE(::mkdir(bob.c_str(), 0755) == 0);
    REQUIRE(::mkdir(carol.c_str(), 0755) == 0);
    REQUIRE(::mkdir((carol + "/mail").c_str(), 0755) == 0);
    std::vector<HomeOfUser> accounts{{"bob", bob}, {"carol", carol}, {"ghost", tmp.path + "/missing"}};
    CHECK(check_home_mail_folders("Mailbox", accounts).empty());
    REQUIRE(::chmod(bob.c_str(), 01777) == 0);
    auto found = check_home_mail_folders("Mailbox", accounts);
    REQUIRE(found.size() == 1);
    CHECK(found[0].severity == CheckFinding::Severity::warning);
    CHECK(found[0].text == "the folder " + bob + " of bob's mailbox is world-writable (mode 1777): any user can "
                           "create files beside the mailbox; make it 0755 or stricter (chmod o-w)");
    CHECK(check_exit_code(found) == 0);
    // The folder that holds the mbox is what counts, not the home itself.
    REQUIRE(::chmod((carol + "/mail").c_str(), 0777) == 0);
    auto nested = check_home_mail_folders("mail/inbox", accounts);
    REQUIRE(nested.size() == 1);
    CHECK(nested[0].text.find(carol + "/mail of carol's") != std::string::npos);
    // A Maildir in the home is not an mbox: nothing to plant beside it.
    CHECK(check_home_mail_folders("Maildir/", accounts).empty());
    // A folder shared by many accounts is reported once; past ten, one summary line.
    std::vector<HomeOfUser> crowd;
    for (int i = 0; i < 3; ++i) crowd.push_back({"shared" + std::to_string(i), bob});
    CHECK(check_home_mail_folders("Mailbox", crowd).size() == 1);
    std::vector<HomeOfUser> many;
    for (int i = 0; i < 13; ++i) {
        std::string home = tmp.path + "/u" + std::to_string(i);
        REQUIRE(::mkdir(home.c_str(), 0777) == 0);
        REQUIRE(::chmod(home.c_str(), 0777) == 0);
        many.push_back({"u" + std::to_string(i), home});
    }
    auto listed = check_home_mail_folders("Mailbox", many);
    REQUIRE(listed.size() == 11);
    CHECK(listed.back().text == "3 more world-writable folders holding users' mailboxes");
}
