#!/usr/bin/env python3
"""What a hostile caller puts in an address or a name never becomes a command, a file
or a header field (SPEC sections 1, 4 and 5; docs/security.md):

- an address that arrives from outside is always an address: `"|cmd"@host`,
  `/etc/passwd@host` and `":include:/path"@host` are unknown users (5.1.1), never
  run, written or read;
- a local part never names a path: `../x`, `bob/../alice` and their quoted forms are
  refused or unknown, and nothing is created outside the mailboxes of real users;
- `-F NAME` and `-f SENDER` with line breaks cannot add header fields or lines.

Each case also checks that the other users' mailboxes did not change."""
import os

import mrtest
from sendmail_case import SendmailCase, split_message, value_of

SIMPLE = b"Subject: plain\n\nbody\n"


def tree(folder):
    """Every path below folder, with its size: what a delivery may have created."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = os.lstat(path).st_size
    return found


class HostileAddresses(SendmailCase):
    def setUp(self):
        super().setUp()
        self.mark = os.path.join(self.box.dir, "MARK")
        self.outside = os.path.join(self.box.dir, "outside")
        os.mkdir(self.outside, 0o777)
        os.chmod(self.outside, 0o777)
        # bob has mail already: nothing below may change it.
        self.deliver(["bob"], b"Subject: before\n\nbob's own\n")
        self.before = tree(self.box.mail)

    def assertNothingEscaped(self):
        self.assertFalse(os.path.exists(self.mark), "a command ran")
        self.assertEqual(os.listdir(self.outside), [], "a file was written outside the mail folder")
        after = tree(self.box.mail)
        for path, size in self.before.items():
            self.assertEqual(after.get(path), size, f"{path} changed")
        # Only root's mailbox (the bounces come back to the sender) may be new.
        self.assertLessEqual(set(after) - set(self.before), {"root"}, sorted(after))

    def test_a_pipe_a_path_or_an_include_given_as_a_recipient_is_an_unknown_user(self):
        for rcpt in (f'"|touch {self.mark}"@test.example', f'"|touch {self.mark}"',
                     f"{self.outside}/x@test.example", f'"{self.outside}/x"@test.example',
                     f'":include:{self.box.passwd}"@test.example', '"\\\\bob"@test.example'):
            with self.subTest(recipient=rcpt):
                result = self.box.sendmail(["-odq", rcpt], SIMPLE)
                if result.returncode == 65:  # refused at the door: as good as unknown
                    self.assertNothingQueued()
                    continue
                self.assertExit(result, 0)
                self.run_queue()
                bounced = [line for line in self.log_lines() if "status=bounced" in line]
                self.assertTrue(bounced and "dsn=5.1.1" in bounced[-1], bounced[-1:])
                self.assertNothingEscaped()

    def test_the_same_recipients_given_to_dash_t_headers_are_addresses_too(self):
        message = (f'To: "|touch {self.mark}"@test.example, "{self.outside}/y"@test.example\n'
                   f"Subject: t\n\nbody\n").encode()
        result = self.box.sendmail(["-odq", "-t"], message)
        if result.returncode != 65:
            self.assertExit(result, 0)
            self.run_queue()
        self.assertNothingEscaped()

    def test_local_parts_that_look_like_paths_never_leave_the_mail_folder(self):
        for fmt in ("mbox", "maildir"):
            for user in ("../bob", "bob/../alice", "..", ".", "bob/x", f"..{self.outside}", "bob/"):
                with self.subTest(format=fmt, mda_user=user):
                    result = self.box.mda(["-m", fmt, user], SIMPLE)
                    self.assertIn(result.returncode, (64, 67), result.stderr)
                    self.assertNothingEscaped()
        for rcpt in ('"../bob"@test.example', '"bob/../alice"@test.example',
                     f'"../../{os.path.basename(self.outside)}/z"@test.example', '".."@test.example'):
            with self.subTest(recipient=rcpt):
                result = self.box.sendmail(["-odq", rcpt], SIMPLE)
                if result.returncode == 65:
                    self.assertNothingQueued()
                    continue
                self.assertExit(result, 0)
                self.run_queue()
                self.assertNothingEscaped()

    def test_a_full_name_with_line_breaks_adds_no_header_field(self):
        for name in ("Evil\nBcc: carol@test.example", "Evil\r\nSubject: forged", "Evil\n\nbody?", "\n"):
            with self.subTest(name=name):
                self.deliver(["-F", name, "alice"], SIMPLE)
        for raw in self.stored("alice"):
            head, body = split_message(raw)
            self.assertEqual(value_of(head, "Subject"), [b"plain"])
            self.assertEqual(value_of(head, "Bcc"), [])
            self.assertEqual(len(value_of(head, "From")), 1)
            self.assertNotIn(b"\r", head)
            self.assertEqual(body, b"body\n")
        self.assertEqual(self.stored("carol"), [], "the Bcc: in -F was not a recipient")

    def test_a_sender_with_line_breaks_is_refused_and_nothing_is_queued(self):
        for sender in ("a@test.example\nBcc: carol@test.example", "a@test.example\r\nX: y",
                       "a\rb@test.example", "a@test.example\x1b[2J"):
            with self.subTest(sender=sender):
                result = self.box.sendmail(["-odq", "-f", sender, "alice"], SIMPLE)
                self.assertExit(result, 65)
                self.assertNothingQueued()
                self.assertNotIn(b"\n", result.stderr.rstrip(b"\n"), "one error line")
                result = self.box.mda(["-f", sender, "alice"], SIMPLE)
                self.assertNotEqual(result.returncode, 0)
        self.assertEqual(self.stored("alice"), [])
        self.assertEqual(self.stored("carol"), [])


if __name__ == "__main__":
    mrtest.main()
