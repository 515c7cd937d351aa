#!/usr/bin/env python3
"""Small findings of a hostile-input review (issue 7, section 3): each class is one
finding, shown through the built programs.

- ConfigPaths: an empty or relative path key is a configuration error (78).
- EscapedLines: input repeated in an error or log line cannot forge a second line
  (docs/logging.md): one event is one line on stderr and in the log file.
- OwnedHeaders: a message's own Return-Path:, and in mbox its Content-Length: and
  Content-Lines:, are left out on delivery, so every reader (Python's mailbox,
  mutt, formail, Dovecot) counts the same messages and none swallows the next.
"""
import mailbox
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time
import unittest

import mrtest
from sendmail_case import SendmailCase

SIMPLE = b"Subject: s\n\nbody\n"


class ConfigPaths(SendmailCase):
    def test_an_empty_or_relative_path_key_exits_78_naming_file_line_and_key(self):
        for key, value in (("spool_dir", ""), ("spool_dir", "spool"), ("mail_spool_dir", ""),
                           ("aliases", "aliases"), ("smtpd_tls_cert_file", "cert.pem")):
            with self.subTest(key=key, value=value):
                # Every other path key points into the sandbox, so that a program that
                # wrongly accepted the value still touches nothing of the machine's.
                safe = {"spool_dir": self.box.spool, "mail_spool_dir": self.box.mail,
                        "log": self.box.log}
                safe.pop(key, None)
                lines = "".join(f"{k} = {v}\n" for k, v in safe.items())
                conf = self.box.write("paths.conf", f"# paths\n{key} = {value}\n{lines}")
                for program, args in (("sendmail", ["-C", conf, "-odq", "bob"]),
                                      ("mda", ["-C", conf, "bob"])):
                    # In the sandbox: a program that took the relative path would
                    # create its spool in the current folder.
                    result = subprocess.run([os.path.join(mrtest.BIN, program)] + args, input=SIMPLE,
                                            capture_output=True, env=self.box.env(), cwd=self.box.dir, timeout=120)
                    self.assertExit(result, 78)
                    line = self.one_error_line(result, program)
                    self.assertIn(f"paths.conf:2: bad value for '{key}'", line)
                self.assertNothingQueued()


# A line an attacker would like to see in the administrator's log.
FORGED = "Dec  2 10:00:00 host mailroom/local[1]: to=<root>, status=sent"


class EscapedLines(SendmailCase):
    def log_text(self):
        if not os.path.exists(self.box.log):
            return ""
        with open(self.box.log, "rb") as f:
            return f.read().decode(errors="replace")

    def assertNoForgedLine(self, text):
        for line in text.splitlines():
            self.assertFalse(line.startswith("Dec  2 10:00:00 host"), line)

    def test_mda_repeats_an_unknown_user_with_a_newline_as_one_escaped_line(self):
        result = self.box.mda(["nosuch\n" + FORGED], SIMPLE)
        self.assertExit(result, 67)
        line = self.one_error_line(result, "mda")
        self.assertIn("unknown user nosuch\\n" + FORGED, line)
        self.assertNoForgedLine(self.log_text())

    def test_sendmail_repeats_an_address_with_cr_lf_as_one_escaped_line(self):
        for args in (["-odq", "bob\r\n" + FORGED], ["-odq", "-f", "alice\r\n" + FORGED, "bob"]):
            with self.subTest(args=args):
                result = self.box.sendmail(args, SIMPLE)
                self.assertExit(result, 65)
                self.assertIn("\\r\\n" + FORGED, self.one_error_line(result))
                self.assertNothingQueued()

    def test_terminal_escapes_in_an_error_line_are_escaped(self):
        result = self.box.sendmail(["-odq", "bob\x1b]0;owned\x07\x1b[2J"], SIMPLE)
        self.assertExit(result, 65)
        self.assertNotIn(b"\x1b", result.stderr)
        self.assertNotIn(b"\x07", result.stderr)
        self.assertIn("bob\\x1b]0;owned\\x07\\x1b[2J", self.one_error_line(result))

    def test_the_mda_delivery_log_line_escapes_the_original_recipient(self):
        result = self.box.mda(["-a", "orig\n" + FORGED, "bob"], SIMPLE)
        self.assertExit(result, 0)
        lines = self.log_text().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("orig_to=<orig\\n" + FORGED + ">, relay=local", lines[0])
        self.assertIn("status=sent", lines[0])

    def test_queue_delivery_log_lines_double_a_backslash_in_the_address(self):
        # A quoted local part may hold a backslash; doubled in the log, so a log
        # reader can tell it from an escape that stands for a control byte.
        self.submit(["-odq", '"bob\\\\nx"@test.example'], SIMPLE)
        self.assertExit(self.box.mta(["-q"]), 0)
        to_lines = [line for line in self.log_text().splitlines() if "to=<\"bob" in line]
        self.assertEqual(len(to_lines), 1, to_lines)
        self.assertIn('to=<"bob\\\\\\\\nx"@test.example>', to_lines[0])
        self.assertNoForgedLine(self.log_text())

    def test_mailq_shows_a_reason_with_control_bytes_on_its_own_line(self):
        # The state log of an entry is written by the runner from delivery texts; a
        # reason holding CR and a terminal escape (as a remote server's reply could)
        # is listed with '?' for each, on one line.
        self.submit(["-odq", "bob"], SIMPLE)
        (entry,) = self.box.queued()
        path = os.path.join(self.box.spool, "queue", entry)
        now = int(time.time())
        with open(path, "ab") as f:
            f.write(b"deferred 0 %d %d 4.4.1 refused\r\x1b[2J\xc2\x9bDec  2 FAKE\n" % (now, now + 3600))
        result = self.box.run("mailq", [])
        self.assertExit(result, 0)
        out = result.stdout
        self.assertNotIn(b"\r", out)
        self.assertNotIn(b"\x1b", out)
        self.assertNotIn(b"\xc2\x9b", out)
        reason = [line for line in out.split(b"\n") if b"refused" in line]
        self.assertEqual(len(reason), 1, out)
        self.assertIn(b"(refused??[2J?Dec  2 FAKE)", reason[0])


MUTT = shutil.which("mutt")
FORMAIL = shutil.which("formail")
DOVEADM = shutil.which("doveadm")


def mutt_count(path):
    """How many messages mutt finds in the mbox at path, read from its status line
    ("Msgs:N"). mutt honours a Content-Length: that ends at the next From_ line or
    at the end of the file. mutt needs a terminal: it gets a pseudo-terminal."""
    cmd = [MUTT, "-n", "-F", "/dev/null", "-R", "-f", path]
    # A home of its own with the ~/Mail folder mutt asks to create otherwise.
    home = os.path.join(os.path.dirname(path), "mutt-home")
    os.makedirs(os.path.join(home, "Mail"), exist_ok=True)
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(TERM="vt100", HOME=home, MAIL=path)
        os.execv(cmd[0], cmd)
    screen = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            screen += data
            if b"Press any key" in data:
                os.write(fd, b"\r")
            found = re.search(rb"Msgs:(\d+)", screen)
            if found:
                return int(found.group(1))
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    raise AssertionError(f"mutt showed no message count: {screen[-500:]!r}")


class OwnedHeaders(mrtest.TestCase):
    SENDER = "alice@test.example"

    def dovecot_subjects(self, mbox_path):
        """Subjects of the messages Dovecot finds in an mbox (as test_mda_dovecot.py)."""
        uid = self.box.uids["alice"]
        gid = uid if mrtest.IS_ROOT else os.getgid()
        root = os.path.join(self.box.home, "alice", "dovecot")
        os.makedirs(root, exist_ok=True)
        if mrtest.IS_ROOT:
            os.chown(root, uid, uid)
        conf = self.box.write("dovecot.conf", f"""
mail_location = mbox:{root}:INBOX={mbox_path}
mail_home = {root}
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 1
first_valid_gid = 1
ssl = no
log_path = {self.box.dir}/dovecot.log
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}
}}
passdb {{
  driver = static
  args = nopassword
}}
""")
        env = dict(os.environ, USER="alice", HOME=root)
        out = subprocess.run([DOVEADM, "-c", conf, "-f", "flow", "fetch", "hdr.subject", "mailbox", "INBOX", "all"],
                             env=env, capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return re.findall(r"hdr.subject=(\S+)", out.stdout.decode())

    def attack(self, user, content_length):
        """The attacker's message: forged Return-Path and Content-Length: NNNNNNNN."""
        return (f"Return-Path: <forged@evil.example>\nFrom: {self.SENDER}\nSubject: attack\n"
                f"Content-Length: {content_length:08d}\nContent-Lines: 3\n\nshort body\n")

    VICTIM = "From: carol@test.example\nSubject: victim\n\nthe message that must not vanish\n"

    def deliver(self, user, text, *args):
        self.assertExit(self.box.mda(["-f", self.SENDER] + list(args) + [user], text), 0)

    def swallowing_length(self):
        """A Content-Length that makes the attack's body end exactly at the end of
        the mbox after the victim's message, measured on a trial mbox of a user
        whose name has the same length (so every line has the same length)."""
        self.deliver("carol", self.attack("carol", 0))
        self.deliver("carol", self.VICTIM)
        with open(self.box.mbox_path("carol"), "rb") as f:
            data = f.read()
        body = data.index(b"\n\n") + 2
        return len(data) - body - 1  # mutt: the last newline is the separator

    def test_every_mbox_reader_finds_both_messages(self):
        length = self.swallowing_length()
        self.deliver("alice", self.attack("alice", length))
        self.deliver("alice", self.VICTIM)
        path = self.box.mbox_path("alice")
        with open(path, "rb") as f:
            data = f.read()
        # Every reader counts both messages (Python's mailbox ignores Content-Length,
        # mutt and formail honour it).
        box = self.box.mbox("alice")
        self.assertEqual([m["Subject"] for m in box], ["attack", "victim"])
        if MUTT:
            self.assertEqual(mutt_count(path), 2, "mutt sees the victim's message")
        if FORMAIL:
            # One Subject: per message formail splits out (-X reads the header only; a
            # grep would also find the swallowed message's Subject: in the body).
            split = subprocess.run([FORMAIL, "-s", FORMAIL, "-X", "Subject:"], input=data, capture_output=True,
                                   timeout=60)
            self.assertEqual(split.stdout.decode().splitlines(), ["Subject: attack", "Subject: victim"])
        if DOVEADM:
            self.assertEqual(self.dovecot_subjects(path), ["attack", "victim"])
        self.assertEqual(box[0].get_all("Return-Path"), [f"<{self.SENDER}>"])
        self.assertNotIn(b"Content-Length:", data)
        self.assertNotIn(b"Content-Lines:", data)
        self.assertEqual(data.count(b"Return-Path:"), 2, data)
        self.assertNotIn(b"forged@evil.example", data)

    @unittest.skipUnless(MUTT, "mutt is not installed")
    def test_mutt_honours_a_content_length_that_reaches_the_end(self):
        # The reader test above is only worth something if mutt trusts the field:
        # in an mbox written by hand with it, the victim is swallowed.
        body = b"short body\n\n"
        victim = b"From carol@test.example Mon Jan  1 00:00:00 2024\nSubject: victim\n\nvictim body\n\n"
        data = (b"From alice@test.example Mon Jan  1 00:00:00 2024\nSubject: attack\n"
                b"Content-Length: %d\n\n" % (len(body) + len(victim) - 1) + body + victim)
        path = os.path.join(self.box.dir, "forged.mbox")
        with open(path, "wb") as f:
            f.write(data)
        self.assertEqual(mutt_count(path), 1)

    def test_maildir_keeps_one_return_path_and_the_size_in_its_name(self):
        folder = os.path.join(self.box.home, "alice", "Maildir")
        self.deliver("alice", self.attack("alice", 5), "-m", "maildir", "-o", folder)
        (name,) = os.listdir(os.path.join(folder, "new"))
        with open(os.path.join(folder, "new", name), "rb") as f:
            data = f.read()
        self.assertEqual(data.count(b"Return-Path:"), 1, data)
        self.assertTrue(data.startswith(f"Return-Path: <{self.SENDER}>\n".encode()))
        # In Maildir a Content-Length is harmless (each file is one message): kept.
        self.assertIn(b"Content-Length: 00000005\n", data)
        self.assertIn(f",S={len(data)}", name)
        (message,) = list(self.box.maildir(folder))
        self.assertEqual(message.get_all("Return-Path"), [f"<{self.SENDER}>"])

    def test_the_queue_path_drops_them_too(self):
        # sendmail -> queue -> mta -q -> mbox: the runner's deliveries use the same reader.
        given = ("Return-Path: <forged@evil.example>\nContent-Length: 1\nSubject: queued\n\n"
                 "Return-Path: body text stays\n").encode()
        result = self.box.sendmail(["-odq", "-f", self.SENDER, "bob"], given)
        self.assertExit(result, 0)
        self.assertExit(self.box.mta(["-q"]), 0)
        with open(self.box.mbox_path("bob"), "rb") as f:
            data = f.read()
        self.assertNotIn(b"forged@evil.example", data)
        self.assertNotIn(b"Content-Length:", data)
        self.assertIn(b"\n\nReturn-Path: body text stays\n", data)
        self.assertEqual(len(self.box.mbox("bob")), 1)


if __name__ == "__main__":
    mrtest.main()
