#!/usr/bin/env python3
"""Limits the caller set and signals they cause (core/process_signals.hpp).

RLIMIT_FSIZE (`ulimit -f`): a write past it is a temporary local failure (75)
that says so, never "larger than message_size_limit" (73, which only the
configured limit gives) and never a death by SIGXFSZ; nothing partial is left
(sendmail: nothing in tmp/ or queue/; mda: the mailbox back to its old size).

SIGPIPE: with `log = stderr` and stderr a pipe whose reader is gone, logging
must not kill the program (the logger never harms its caller, core/log.hpp):
it exits with its normal code and does its work."""
import os
import resource
import subprocess

import mrtest
import queuetest
from mrtest import message


def with_file_size_limit(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def big_message(size, subject="big"):
    line = "x" * 76 + "\n"
    return message(subject, body=line * (size // len(line) + 1))


class FileSizeLimit(mrtest.TestCase):
    config = {"message_size_limit": "100K"}

    def run_limited(self, program, args, data, limit):
        return subprocess.run([os.path.join(mrtest.BIN, program)] + args, input=data.encode(),
                              capture_output=True, env=self.box.env(), timeout=60,
                              preexec_fn=with_file_size_limit(limit))

    def assertNothingQueued(self):
        self.assertEqual(self.box.queued("tmp"), [])
        self.assertEqual(self.box.queued(), [])

    def test_sendmail_past_ulimit_f_is_a_temporary_failure_that_says_so(self):
        self.assertExit(self.box.mta(["-q"]), 0)  # the spool exists before the limit applies
        # 2000 bytes are written at the commit in one go, 60000 in 64 KiB chunks before it.
        for size in (2000, 60000):
            with self.subTest(size=size):
                r = self.run_limited("sendmail", ["-odq", "bob"], big_message(size), 1024)
                self.assertExit(r, 75)
                err = r.stderr.decode(errors="replace")
                self.assertIn("file size limit exceeded (ulimit -f)", err)
                self.assertNotIn("message_size_limit", err)
                self.assertNothingQueued()

    def test_sendmail_over_message_size_limit_still_says_so_under_a_ulimit(self):
        r = self.run_limited("sendmail", ["-odq", "bob"], big_message(150_000), 10 * 1024 * 1024)
        self.assertExit(r, 73, r"message larger than message_size_limit")
        self.assertNothingQueued()

    def test_mda_past_ulimit_f_puts_each_mailbox_back_and_exits_75(self):
        if not mrtest.IS_ROOT:
            self.skipTest("needs root: the per-user children must inherit the limit across the switch to each user")
        # Both mailboxes exist with one message each; the new one does not fit.
        for user in ("bob", "carol"):
            self.assertExit(self.box.mda([user], message(f"first for {user}")), 0)
        sizes = {user: os.path.getsize(self.box.mbox_path(user)) for user in ("bob", "carol")}
        contents = {}
        for user in ("bob", "carol"):
            with open(self.box.mbox_path(user), "rb") as f:
                contents[user] = f.read()
        limit = max(sizes.values()) + 1000
        r = self.run_limited("mda", ["bob", "carol"], big_message(5000), limit)
        self.assertExit(r, 75)
        err = r.stderr.decode(errors="replace")
        self.assertNotIn("message_size_limit", err)
        for user in ("bob", "carol"):
            self.assertRegex(err, rf"cannot deliver to {user} \(4\.\d\.\d .*File too large")
            with open(self.box.mbox_path(user), "rb") as f:
                self.assertEqual(f.read(), contents[user], f"{user}'s mailbox was not put back")
        self.assertEqual([n for n in os.listdir(self.box.mail) if n not in ("bob", "carol")], [],
                         "something was left in the mail folder")

    def test_mda_whose_message_spills_past_ulimit_f_exits_75_and_says_why(self):
        # Over 256 KiB the message is kept in an unnamed file of TMPDIR while read.
        self.box = mrtest.Sandbox(message_size_limit="10M")
        self.addCleanup(self.box.cleanup)
        # The spill file has no name (O_TMPFILE); nothing may appear but the log.
        before = set(os.listdir(self.box.dir)) | {"mailroom.log"}
        r = self.run_limited("mda", ["bob"], big_message(400_000), 100_000)
        self.assertExit(r, 75)
        err = r.stderr.decode(errors="replace")
        self.assertIn("file size limit exceeded (ulimit -f)", err)
        self.assertNotIn("message_size_limit", err)
        self.assertFalse(os.path.exists(self.box.mbox_path("bob")))
        self.assertEqual(set(os.listdir(self.box.dir)) | {"mailroom.log"}, before)


class ClosedLogPipe(mrtest.TestCase):
    config = {"log": "stderr"}

    def run_with_dead_stderr(self, program, args, data=b""):
        """Runs program with stderr a pipe whose read end is already closed."""
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            return subprocess.run([os.path.join(mrtest.BIN, program)] + args, input=data,
                                  stdout=subprocess.DEVNULL, stderr=write_end, env=self.box.env(), timeout=60)
        finally:
            os.close(write_end)

    def test_mta_q_logging_to_a_closed_pipe_delivers_and_exits_0(self):
        self.assertExit(self.box.sendmail(["-odq", "bob"], message("piped", extra_headers="X-Seq: 1\n")), 0)
        r = self.run_with_dead_stderr("mta", ["-q"])
        self.assertEqual(r.returncode, 0, "mta -q was killed by a signal" if r.returncode < 0 else "")
        self.assertEqual(queuetest.count_header(self.box, ["bob"]), {"1": 1})
        self.assertEqual(self.box.queued(), [])

    def test_mda_logging_to_a_closed_pipe_delivers_and_exits_0(self):
        r = self.run_with_dead_stderr("mda", ["bob"], message("piped", extra_headers="X-Seq: 1\n").encode())
        self.assertEqual(r.returncode, 0, "mda was killed by a signal" if r.returncode < 0 else "")
        self.assertEqual(queuetest.count_header(self.box, ["bob"]), {"1": 1})

    def test_sendmail_odq_logging_to_a_closed_pipe_queues_and_exits_0(self):
        r = self.run_with_dead_stderr("sendmail", ["-odq", "bob"], message("piped").encode())
        self.assertEqual(r.returncode, 0, "sendmail was killed by a signal" if r.returncode < 0 else "")
        self.assertEqual(len(self.box.queued()), 1)


if __name__ == "__main__":
    mrtest.main()
