#!/usr/bin/env python3
"""An independent reading of the golden notices in this folder (RFC 3464, 3462, 6533).

The goldens are written from the code's own output (MAILROOM_UPDATE_GOLDEN=1), so
they cannot by themselves show that a notice is right. This script reads each one
with Python's email package, not with mailroom's code, and checks it against what
the request behind it (tests/unit/bounce_test_support.hpp, bounce_test.cpp) asks
for, spelled out below by hand: the MIME structure, every per-message and
per-recipient field of the delivery-status part, the returned original byte for
byte, the human-readable part, and the 7bit/8bit labels. A golden without an entry
in EXPECTED fails.

usage: check_goldens.py FOLDER [NAME.ref ...]   (all *.ref files when no name is given)
Exits 0 when every golden reads as expected; prints each mismatch and exits 1.
"""
import email
import email.utils
import os
import re
import sys
from datetime import datetime, timezone
from email import policy

ARRIVAL = datetime(2024, 6, 3, 13, 22, 11, tzinfo=timezone.utc)  # bounce_test::arrival


def at(seconds_after_arrival):
    return datetime.fromtimestamp(ARRIVAL.timestamp() + seconds_after_arrival, timezone.utc)


SMALL_ORIGINAL = (b"Return-Path: <alice@example.org>\n"
                  b"From: Alice <alice@example.org>\n"
                  b"To: team@example.org, carol@remote.example\n"
                  b"Subject: minutes of the meeting\n"
                  b"Message-ID: <m1@example.org>\n"
                  b"\n"
                  b"Here are the minutes.\n"
                  b"--\n"
                  b"Alice\n")

# What the requests behind the goldens ask for (bounce_test_support.hpp).
COMMON = {
    "reporting_host": "mail.example.org",
    "sender": "alice@example.org",
    "date": at(4 * 3600 + 17),
    "notice_id": "0000Q9Z8Y7X6W5",
    "queue_id": "0000Q1A2B3C4D5",
}
BOB = {"final": "bob@example.org", "original": "team@example.org", "action": "failed", "status": "5.2.2",
       "diagnostic": "x-unix; mailbox bob is full (quota exceeded)", "remote_mta": None, "last_attempt": at(60)}
CAROL = {"final": "carol@remote.example", "original": None, "action": "failed", "status": "5.1.1",
         "diagnostic": "smtp; 550 5.1.1 <carol@remote.example>: no such user",
         "remote_mta": "mx.remote.example", "last_attempt": at(120)}
EXPECTED = {
    "failure_two_recipients.ref": dict(
        COMMON, kind="failure", recipients=[BOB, CAROL], returned="message/rfc822", original=SMALL_ORIGINAL),
    "large_original_headers.ref": dict(
        COMMON, kind="failure", recipients=[BOB, CAROL], returned="text/rfc822-headers",
        original=b"From: alice@example.org\nTo: bob@example.org\nSubject: the big file\n"),
    "delay.ref": dict(
        COMMON, kind="delay", returned="message/rfc822", original=SMALL_ORIGINAL, retry_until=at(5 * 86400),
        recipients=[{"final": "carol@remote.example", "original": None, "action": "delayed", "status": "4.4.1",
                     "diagnostic": "x-unix; connect to mx.remote.example: timed out",
                     "remote_mta": "mx.remote.example", "last_attempt": at(4 * 3600)}]),
    "eight_bit.ref": dict(
        COMMON, kind="failure", returned="message/rfc822",
        original="From: Jörg <joerg@example.org>\nSubject: Grüße\n\nHällo Wörld\n".encode(),
        recipients=[{"final": "jörg@example.org", "original": None, "action": "failed", "status": "5.1.1",
                     "diagnostic": "x-unix; no such user", "remote_mta": None, "last_attempt": at(60)}]),
}

# RFC 3464 section 2.2 and 2.3: the fields a block may hold; X- fields are extensions.
PER_MESSAGE = {"original-envelope-id", "reporting-mta", "dsn-gateway", "received-from-mta", "arrival-date"}
PER_RECIPIENT = {"original-recipient", "final-recipient", "action", "status", "remote-mta", "diagnostic-code",
                 "last-attempt-date", "final-log-id", "will-retry-until"}
ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}


def xtext_decode(text):
    """RFC 6533 utf-8-addr-xtext: \\x{HEX} stands for one code point."""
    return re.sub(r"\\x\{([0-9A-F]{1,6})\}", lambda m: chr(int(m.group(1), 16)), text)


def typed_address(value):
    """'rfc822; a@b' or 'utf-8; xtext' -> the address (RFC 3464 2.3.1, RFC 6533 3)."""
    kind, sep, address = value.partition(";")
    kind, address = kind.strip().lower(), address.strip()
    if not sep or kind not in ("rfc822", "utf-8"):
        raise ValueError(f"address type in {value!r}")
    if kind == "rfc822" and not address.isascii():
        raise ValueError(f"8-bit rfc822 address in {value!r}")
    return xtext_decode(address) if kind == "utf-8" else address


class Checker:
    def __init__(self, name):
        self.name = name
        self.problems = []

    def expect(self, condition, what):
        if not condition:
            self.problems.append(f"{self.name}: {what}")
        return condition

    def equal(self, got, want, what):
        return self.expect(got == want, f"{what}: {got!r}, expected {want!r}")

    def date(self, value, want, what):
        try:
            got = email.utils.parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return self.expect(False, f"{what} is not an RFC 5322 date: {value!r}")
        return self.equal(got, want, what)

    def fields(self, block, allowed, what):
        """Every field is known or an extension, and none occurs twice."""
        names = [k.lower() for k in block.keys()]
        for n in names:
            self.expect(n in allowed or n.startswith("x-"), f"{what}: unknown field {n}")
            self.expect(names.count(n) == 1, f"{what}: {n} occurs {names.count(n)} times")


def raw_parts(raw, boundary):
    """The bodies of the top-level parts, cut at the boundary lines (RFC 2046 5.1.1:
    the line break before a delimiter belongs to the delimiter)."""
    delimiter = b"\n--" + boundary.encode()
    pieces = raw.split(delimiter)
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        head, _, body = piece.partition(b"\n\n")
        parts.append(body)
    return parts


def check(path, want):
    c = Checker(os.path.basename(path))
    with open(path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=policy.default)

    # The message as a whole (RFC 3464 2, RFC 3462, RFC 3834 for Auto-Submitted).
    for part in msg.walk():
        c.expect(not part.defects, f"defects {part.defects!r} in {part.get_content_type()}")
    c.equal(msg["MIME-Version"], "1.0", "MIME-Version")
    c.equal(msg.get_content_type(), "multipart/report", "top-level type")
    c.equal(msg.get_param("report-type"), "delivery-status", "report-type")
    c.equal(msg["Auto-Submitted"], "auto-replied", "Auto-Submitted")
    from_name, from_address = email.utils.parseaddr(str(msg["From"]))
    c.equal(from_address, f"MAILER-DAEMON@{want['reporting_host']}", "From")
    c.equal([a for _, a in email.utils.getaddresses([str(msg["To"])])], [want["sender"]], "To")
    c.date(msg["Date"], want["date"], "Date")
    c.expect(re.fullmatch(r"<[^<>@\s]*" + re.escape(want["notice_id"]) + "@" + re.escape(want["reporting_host"]) + ">",
                          str(msg["Message-ID"])), f"Message-ID {msg['Message-ID']!r}")
    subject = str(msg["Subject"])
    c.expect(("Delayed" in subject) if want["kind"] == "delay" else ("Undelivered" in subject), f"Subject {subject!r}")
    for line in raw.split(b"\n"):
        c.expect(len(line) <= 998, "a line longer than 998 bytes")

    parts = msg.get_payload()
    if not c.expect(isinstance(parts, list) and len(parts) == 3, "three parts"):
        return c.problems
    human, report, returned = parts
    c.equal([p.get_content_type() for p in parts], ["text/plain", "message/delivery-status", want["returned"]],
            "part types")

    # 7bit or 8bit (RFC 2045 2.7, 2.8): a part with 8-bit bytes says 8bit, and so does the top level.
    bodies = raw_parts(raw, msg.get_boundary())
    c.equal(len(bodies), 3, "parts between the boundary lines")
    eight_bit = any(not body.isascii() for body in bodies)
    for part, body in zip(parts, bodies):
        cte = (part["Content-Transfer-Encoding"] or "7bit").lower()
        c.equal(cte, "8bit" if not body.isascii() else cte, f"{part.get_content_type()} transfer encoding")
        c.expect(cte in ("7bit", "8bit"), f"{part.get_content_type()} transfer encoding {cte}")
    c.equal((msg["Content-Transfer-Encoding"] or "7bit").lower(), "8bit" if eight_bit else "7bit",
            "top-level transfer encoding")
    c.expect(bodies[1].isascii() if len(bodies) > 1 else False, "the delivery-status part is not 7-bit")

    # The delivery-status part (RFC 3464 2.1): a per-message block, then one per recipient.
    blocks = report.get_payload()
    if not c.equal(len(blocks), 1 + len(want["recipients"]), "delivery-status blocks"):
        return c.problems
    per_message = blocks[0]
    c.fields(per_message, PER_MESSAGE, "per-message block")
    c.equal(per_message["Reporting-MTA"], f"dns; {want['reporting_host']}", "Reporting-MTA")
    c.date(per_message["Arrival-Date"], ARRIVAL, "Arrival-Date")
    for block, r in zip(blocks[1:], want["recipients"]):
        who = f"recipient {r['final']}"
        c.fields(block, PER_RECIPIENT, who)
        for required in ("Final-Recipient", "Action", "Status"):
            c.expect(block[required] is not None, f"{who}: no {required}")
        try:
            c.equal(typed_address(str(block["Final-Recipient"])), r["final"], f"{who}: Final-Recipient")
            if r["original"] is None:
                c.expect(block["Original-Recipient"] is None, f"{who}: Original-Recipient")
            else:
                c.equal(typed_address(str(block["Original-Recipient"])), r["original"], f"{who}: Original-Recipient")
        except ValueError as e:
            c.expect(False, f"{who}: {e}")
        action = str(block["Action"]).lower()
        c.expect(action in ACTIONS, f"{who}: Action {action}")
        c.equal(action, r["action"], f"{who}: Action")
        status = str(block["Status"])
        c.expect(re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", status), f"{who}: Status {status}")
        c.equal(status, r["status"], f"{who}: Status")
        if action == "delayed":
            c.expect(status.startswith("4."), f"{who}: delayed with a {status} status")
            c.date(block["Will-Retry-Until"], want["retry_until"], f"{who}: Will-Retry-Until")
        else:
            c.expect(block["Will-Retry-Until"] is None, f"{who}: Will-Retry-Until on a {action} recipient")
        c.expect(re.fullmatch(r"[A-Za-z0-9-]+; \S.*", str(block["Diagnostic-Code"])),
                 f"{who}: Diagnostic-Code {block['Diagnostic-Code']!r} is not TYPE; TEXT")
        c.equal(str(block["Diagnostic-Code"]), r["diagnostic"], f"{who}: Diagnostic-Code")
        if r["remote_mta"] is None:
            c.expect(block["Remote-MTA"] is None, f"{who}: Remote-MTA")
        else:
            c.equal(str(block["Remote-MTA"]), f"dns; {r['remote_mta']}", f"{who}: Remote-MTA")
        c.date(block["Last-Attempt-Date"], r["last_attempt"], f"{who}: Last-Attempt-Date")

    # The human-readable part names every recipient with its status, and says how to
    # get help (the queue ID); its charset is declared and decodes.
    charset = human.get_content_charset()
    c.expect(charset in ("us-ascii", "utf-8"), f"charset {charset}")
    try:
        text = human.get_payload(decode=True).decode(charset or "us-ascii")
    except (UnicodeDecodeError, LookupError) as e:
        c.expect(False, f"human-readable part: {e}")
        text = ""
    for r in want["recipients"]:
        # A paragraph per recipient: "<address>" at the start of a line, then its status.
        paragraph = re.search(r"(?m)^<" + re.escape(r["final"]) + r">.*\n((?:.+\n)*)", text)
        if c.expect(paragraph, f"human-readable part has no paragraph for {r['final']}"):
            c.expect(r["status"] in paragraph.group(1), f"human-readable part: no {r['status']} for {r['final']}")
    c.expect(want["queue_id"] in text, "human-readable part does not give the queue ID")
    if want["kind"] == "delay":
        dates = re.findall(r"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", text)
        c.expect(want["retry_until"] in [email.utils.parsedate_to_datetime(d) for d in dates],
                 "delay notice does not say until when it retries")

    # The original, byte for byte: the whole message, or its header section only.
    if len(bodies) == 3:
        c.equal(bodies[2], want["original"], "returned original")
    if want["returned"] == "message/rfc822":
        inner = returned.get_payload()[0]
        c.expect(inner["From"] is not None, "the returned message does not parse as a message")
    return c.problems


def main(argv):
    folder = argv[1]
    names = argv[2:] or sorted(n for n in os.listdir(folder) if n.endswith(".ref"))
    problems = []
    for name in names:
        if name not in EXPECTED:
            problems.append(f"{name}: no independent expectation in {os.path.basename(__file__)}")
            continue
        problems += check(os.path.join(folder, name), EXPECTED[name])
    for p in problems:
        print("golden check failed:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
