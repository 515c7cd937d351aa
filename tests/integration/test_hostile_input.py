#!/usr/bin/env python3
"""Small findings of a hostile-input review (issue 7, section 3): each class is one
finding, shown through the built programs.

- ConfigPaths: an empty or relative path key is a configuration error (78).
- EscapedLines: input repeated in an error or log line cannot forge a second line
  (docs/logging.md): one event is one line on stderr and in the log file.
"""
import os
import re
import time

import mrtest
from sendmail_case import SendmailCase

SIMPLE = b"Subject: s\n\nbody\n"


class ConfigPaths(SendmailCase):
    def test_an_empty_or_relative_path_key_exits_78_naming_file_line_and_key(self):
        for key, value in (("spool_dir", ""), ("spool_dir", "spool"), ("mail_spool_dir", ""),
                           ("aliases", "aliases"), ("smtpd_tls_cert_file", "cert.pem")):
            with self.subTest(key=key, value=value):
                conf = self.box.write("paths.conf", f"# paths\n{key} = {value}\n")
                for program, args in (("sendmail", ["-C", conf, "-odq", "bob"]),
                                      ("mda", ["-C", conf, "bob"])):
                    result = self.box.run(program, args, SIMPLE)
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


if __name__ == "__main__":
    mrtest.main()
