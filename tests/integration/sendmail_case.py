"""Shared helpers of the sendmail integration tests (test_sendmail*.py).

A SendmailCase submits with the built sendmail, runs the queue with `mta -q`
and reads the mailboxes back with Python's mailbox module. Messages are bytes
throughout, so that a test sees exactly what was stored.
"""
import os
import re
import time

import mrtest

# The fields every delivered copy starts with: mda's two, then sendmail's Received:.
RECEIVED_RE = rb"Received: by test\.example \(mailroom, from userid \d+\)\n\tid (\w+); [^\n]+\n"


def split_message(raw: bytes):
    """(header section without its empty line, body) of a stored message."""
    head, sep, body = raw.partition(b"\n\n")
    if not sep:
        return head, b""
    return head + b"\n", body


def header_fields(head: bytes):
    """[(name, whole field text with its continuation lines)] in order."""
    fields = []
    for field in re.split(rb"\n(?![ \t])", head.rstrip(b"\n")):
        if field:
            fields.append((field.split(b":", 1)[0].strip().decode(errors="replace"), field + b"\n"))
    return fields


def field_names(head: bytes):
    return [name.lower() for name, _ in header_fields(head)]


def value_of(head: bytes, name: str):
    """The values of every field called name (case-insensitive), unfolded."""
    values = []
    for field_name, field in header_fields(head):
        if field_name.lower() == name.lower():
            values.append(re.sub(rb"\n[ \t]", b" ", field.split(b":", 1)[1]).strip())
    return values


class SendmailCase(mrtest.TestCase):
    def submit(self, args, message, code=0, **kwargs):
        result = self.box.sendmail(args, message, **kwargs)
        self.assertExit(result, code)
        return result

    def deliver(self, args, message):
        """sendmail -odq ARGS, then mta -q: the queue must end up empty."""
        self.submit(["-odq"] + list(args), message)
        self.assertEqual(len(self.box.queued()), 1, "sendmail -odq queues one entry")
        self.run_queue()

    def run_queue(self):
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.box.queued(), [], "mta -q delivered everything")

    def stored(self, user):
        """The raw messages in USER's mbox, oldest first ([] when there is none)."""
        if not os.path.exists(self.box.mbox_path(user)):
            return []
        box = self.box.mbox(user)
        return [box.get_bytes(key) for key in box.keys()]

    def only(self, user):
        """The one message in USER's mbox, and its From_ line."""
        box = self.box.mbox(user)
        self.assertEqual(len(box), 1, f"{user} has one message")
        key = box.keys()[0]
        return box.get_bytes(key), box[key].get_from()

    def strip_trace(self, raw, user="bob"):
        """Checks the Return-Path:, Delivered-To:, Received: prefix; returns the queue
        ID from Received: and what follows the prefix."""
        match = re.match(rb"Return-Path: <[^>\n]*>\nDelivered-To: " + user.encode() +
                         rb"@test\.example\n" + RECEIVED_RE, raw)
        self.assertIsNotNone(match, raw[:300])
        return match.group(1).decode(), raw[match.end():]

    def log_lines(self):
        with open(self.box.log, "rb") as f:
            return f.read().decode(errors="replace").splitlines()

    def wait_for(self, predicate, seconds, what):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        self.fail(f"{what} did not happen within {seconds} s")

    def one_error_line(self, result, program="sendmail"):
        lines = result.stderr.decode(errors="replace").splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith(f"{program}: error: "), lines[0])
        return lines[0]

    def assertNothingQueued(self):
        self.assertEqual(self.box.queued("tmp"), [], "nothing left in tmp/")
        self.assertEqual(self.box.queued("queue"), [], "nothing in queue/")
