#!/usr/bin/env python3
"""sendmail's failures: each gets its SPEC exit code and one line
`sendmail: error: ...` on stderr, and leaves nothing in the spool. Also the
pickup log line that every accepted submission writes."""
import re

import mrtest
from sendmail_case import SendmailCase

SIMPLE = b"Subject: s\n\nbody\n"


class Usage(SendmailCase):
    def test_no_recipients_and_no_dash_t_exits_64_with_a_usage_line(self):
        result = self.box.sendmail(["-odq"], SIMPLE)
        self.assertExit(result, 64)
        self.assertRegex(self.one_error_line(result), r"usage: sendmail .*recipient")
        self.assertNothingQueued()

    def test_an_unknown_option_exits_64(self):
        for args in (["-Z", "bob"], ["--bogus", "bob"], ["-bx", "bob"], ["-qX"], ["-odq", "-f"]):
            with self.subTest(args=args):
                result = self.box.sendmail(args, SIMPLE)
                self.assertExit(result, 64)
                self.one_error_line(result)
        self.assertRegex(self.one_error_line(self.box.sendmail(["-Z", "bob"], SIMPLE)), r"-Z")
        self.assertNothingQueued()

    def test_help_and_version_exit_0(self):
        for args, text in ((["--help"], rb"usage: sendmail"), (["--version"], rb"^sendmail \(mailroom\) \S+\n$"),
                           (["-odq", "--help", "bob"], rb"usage: sendmail")):
            with self.subTest(args=args):
                result = self.box.sendmail(args, SIMPLE)
                self.assertExit(result, 0)
                self.assertRegex(result.stdout, text)
                self.assertEqual(result.stderr, b"")
        self.assertNothingQueued()

    def test_a_missing_configuration_file_exits_78(self):
        result = self.box.sendmail(["-C", self.box.dir + "/nonexistent.conf", "-odq", "bob"], SIMPLE)
        self.assertExit(result, 78)
        self.assertIn("nonexistent.conf", self.one_error_line(result))

    def test_an_unknown_configuration_key_exits_78(self):
        conf = self.box.write("bad.conf", f"spool_dir = {self.box.spool}\nno_such_key = 1\n")
        result = self.box.sendmail(["-C", conf, "-odq", "bob"], SIMPLE)
        self.assertExit(result, 78)
        self.assertIn("no_such_key", self.one_error_line(result))
        self.assertNothingQueued()


class BadAddresses(SendmailCase):
    def test_a_recipient_that_does_not_parse_exits_65_and_nothing_is_queued(self):
        for given in ("bob@@test.example", "<bob", "bob smith", "bob@", "@test.example", "<>"):
            with self.subTest(recipient=given):
                result = self.box.sendmail(["-odq", given], SIMPLE)
                self.assertExit(result, 65)
                self.assertIn(given, self.one_error_line(result))
                self.assertNothingQueued()

    def test_one_bad_recipient_among_good_ones_queues_nothing(self):
        result = self.box.sendmail(["-odq", "bob", "carol@@x", "dave"], SIMPLE)
        self.assertExit(result, 65)
        self.one_error_line(result)
        self.assertNothingQueued()

    def test_a_bad_dash_f_sender_exits_65_and_nothing_is_queued(self):
        for given in ("a b@test.example", "<alice", "alice@", "alice@@test.example"):
            with self.subTest(sender=given):
                result = self.box.sendmail(["-odq", "-f", given, "bob"], SIMPLE)
                self.assertExit(result, 65)
                self.assertIn("sender", self.one_error_line(result))
                self.assertNothingQueued()

    def test_dash_t_with_an_unparsable_to_exits_65_and_nothing_is_queued(self):
        for to in (b"<bob", b"bob@", b"a b c", b"bob, carol@@x"):
            with self.subTest(to=to):
                result = self.box.sendmail(["-odq", "-t"], b"To: " + to + b"\nSubject: s\n\nbody\n")
                self.assertExit(result, 65)
                self.assertIn("To:", self.one_error_line(result))
                self.assertNothingQueued()

    def test_dash_t_with_a_bad_bcc_and_a_command_line_recipient_queues_nothing(self):
        result = self.box.sendmail(["-odq", "-t", "bob"], b"To: carol\nBcc: <dave\n\nbody\n")
        self.assertExit(result, 65)
        self.assertIn("Bcc:", self.one_error_line(result))
        self.assertNothingQueued()

    def test_dash_t_without_any_recipient_exits_65(self):
        result = self.box.sendmail(["-odq", "-t"], b"Subject: nobody\n\nbody\n")
        self.assertExit(result, 65)
        self.one_error_line(result)
        self.assertNothingQueued()


class SizeLimit(SendmailCase):
    config = {"message_size_limit": "10K"}

    def assertTooBig(self, args, message):
        result = self.box.sendmail(args, message)
        self.assertExit(result, 73)
        self.assertIn("message_size_limit", self.one_error_line(result))
        self.assertNothingQueued()

    def test_a_message_over_message_size_limit_exits_73_and_nothing_is_queued(self):
        self.assertTooBig(["-odq", "bob"], SIMPLE + b"x" * 11 * 1024 + b"\n")

    def test_a_much_larger_message_exits_73_too(self):
        self.assertTooBig(["-odq", "bob"], SIMPLE + (b"y" * 99 + b"\n") * 20000)

    def test_a_header_section_over_the_limit_exits_73(self):
        self.assertTooBig(["-odq", "-t"], b"To: bob\nX-Big: " + b"z" * 20 * 1024 + b"\n\nbody\n")

    def test_dash_odi_over_the_limit_exits_73_and_delivers_nothing(self):
        self.assertTooBig(["-odi", "bob"], SIMPLE + b"x" * 11 * 1024 + b"\n")
        self.assertEqual(self.stored("bob"), [])

    def test_a_message_under_the_limit_is_queued(self):
        self.submit(["-odq", "bob"], SIMPLE + b"x" * 8 * 1024 + b"\n")
        self.assertEqual(len(self.box.queued()), 1)


class PickupLog(SendmailCase):
    def test_each_submission_logs_a_pickup_line_with_uid_and_sender(self):
        self.submit(["-odq", "bob"], SIMPLE)
        self.submit(["-odq", "-f", "alice@test.example", "bob"], SIMPLE)
        self.submit(["-odq", "-f", "<>", "bob"], SIMPLE)
        pickup = [line for line in self.log_lines() if "mailroom/pickup[" in line]
        self.assertEqual(len(pickup), 3, pickup)
        ids = self.box.queued()
        senders = []
        for line in pickup:
            match = re.search(r" mailroom/pickup\[\d+\]: (\w+): uid=(\d+) from=<([^>]*)>$", line)
            self.assertIsNotNone(match, line)
            self.assertIn(match.group(1), ids)
            self.assertEqual(match.group(2), "0")  # root, or uid_wrapper's root
            senders.append(match.group(3))
        # As Postfix's pickup: the login name, the -f address as given, <> for the null sender.
        self.assertEqual(senders, ["root", "alice@test.example", ""])

    def test_a_refused_submission_logs_no_pickup_line(self):
        self.assertExit(self.box.sendmail(["-odq", "bob@@x"], SIMPLE), 65)
        self.assertExit(self.box.sendmail(["-odq", "-t"], b"To: <x\n\nb\n"), 65)
        try:
            lines = self.log_lines()
        except FileNotFoundError:
            lines = []
        self.assertEqual([line for line in lines if "pickup" in line], [])


if __name__ == "__main__":
    mrtest.main()
