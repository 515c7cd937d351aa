#!/usr/bin/env python3
"""Small findings of a hostile-input review (issue 7, section 3): each class is one
finding, shown through the built programs.

- ConfigPaths: an empty or relative path key is a configuration error (78).
"""
import os

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


if __name__ == "__main__":
    mrtest.main()
