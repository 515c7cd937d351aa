#!/usr/bin/env python3
"""lmtpd against hostile clients: malformed and overlong commands, SMTP smuggling
probes in DATA and BDAT, NULs, a flood of recipients, clients that vanish or idle,
connection floods and SIGTERM in the middle of a message. Each test checks that
nothing is delivered that must not be, nothing accepted is lost, no file is left
behind, the session (or the server) goes on, and lmtpd's memory stays bounded."""
import os
import re
import selectors
import signal
import socket
import threading
import time

import lmtptest
import mrtest
from smtp_probes import codes, final_lines, parent_of, rss_kb  # the SMTP listener's probes share these

MAILDIR = dict(lmtptest.LmtpdCase.config)
RSS_LIMIT_KB = 64 * 1024
ENHANCED = re.compile(rb"^[245]\d\d [245]\.\d{1,3}\.\d{1,3} ")
GREETED = b"LHLO client.example\r\n"
ENVELOPE = b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@test.example>\r\n"


def text(subject, body=b"hello\r\n"):
    return b"Subject: " + subject + b"\r\n\r\n" + body


def unix_connect(path, timeout=10):
    """A connected unix socket. The connect itself blocks: with a timeout set, Python
    makes the socket non-blocking and a full listen backlog gives EAGAIN at once."""
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    except BaseException:
        s.close()
        raise
    s.settimeout(timeout)
    return s


class Client:
    """One connection read reply by reply."""

    def __init__(self, case, tcp=False, timeout=10):
        self.case = case
        if tcp:
            self.sock = socket.create_connection(("127.0.0.1", case.port), timeout=timeout)
        else:
            self.sock = unix_connect(case.socket, timeout)
        self.buffer = b""
        self.transcript = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def reply(self):
        """The next whole reply: (code, its lines joined by CRLF); (None, what came) at EOF."""
        while True:
            while b"\r\n" in self.buffer:
                end = 0
                while True:
                    nl = self.buffer.find(b"\r\n", end)
                    if nl < 0:
                        break
                    line = self.buffer[end:nl]
                    end = nl + 2
                    if line[3:4] != b"-":
                        whole = self.buffer[:end]
                        self.buffer = self.buffer[end:]
                        self.transcript += whole
                        return int(line[:3]), whole
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                left, self.buffer = self.buffer, b""
                self.transcript += left
                return None, left
            self.buffer += chunk

    def cmd(self, line: bytes):
        self.send(line + b"\r\n")
        return self.reply()

    def until_close(self):
        """Everything up to the server's close."""
        data = self.buffer
        self.buffer = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        self.transcript += data
        return data

    def close(self):
        self.sock.close()


class HostileCase(lmtptest.LmtpdCase):
    config = MAILDIR

    def setUp(self):
        super().setUp()
        # The socket's name appears at bind(), a moment before listen(): wait until
        # it answers, so that no test meets ECONNREFUSED from a server starting up.
        deadline = time.time() + 10
        while True:
            try:
                probe = socket.socket(socket.AF_UNIX)
                probe.connect(self.socket)
                probe.close()
                break
            except ConnectionRefusedError:
                probe.close()
                if time.time() > deadline:
                    self.fail("lmtpd does not accept on its socket: " + self.log())
                time.sleep(0.02)
        # The probe's session has come and gone: the sessions process runs.
        self.wait_for_log("disconnect from", 1)
        self.passwd_stat = os.stat("/etc/passwd")
        self.files_before = self.sandbox_files()

    # --- what the server did ---

    def client(self, **kwargs):
        c = Client(self, **kwargs)
        self.addCleanup(c.close)
        return c

    def why(self, answer=b""):
        if isinstance(answer, bytes):
            answer = answer.decode(errors="replace")
        log = self.log().splitlines()
        if len(log) > 40:
            log = [f"[{len(log) - 40} lines before]"] + log[-40:]
        if len(answer) > 3000:
            answer = answer[:1500] + f"\n[... {len(answer) - 3000} characters ...]\n" + answer[-1500:]
        return f"\n--- server answered:\n{answer}\n--- lmtpd log (end):\n" + "\n".join(log)

    def maildir_files(self, user, folders=("new", "cur")):
        """The raw bytes of every file in a user's Maildir folders."""
        found = []
        for folder in folders:
            path = os.path.join(self.box.mail, user, folder)
            if os.path.isdir(path):
                for name in sorted(os.listdir(path)):
                    with open(os.path.join(path, name), "rb") as f:
                        found.append(f.read())
        return found

    def sandbox_files(self):
        found = set()
        for root, dirs, files in os.walk(self.box.dir):
            for name in dirs + files:
                found.add(os.path.relpath(os.path.join(root, name), self.box.dir))
        return found

    def assertNothingWrittenBut(self, *users, answer=b""):
        """No file appeared in the sandbox but the log and the named users' Maildirs,
        and /etc/passwd is untouched."""
        new = self.sandbox_files() - self.files_before
        allowed = ("mailroom.log",) + tuple(os.path.join("mail", u) for u in users)
        stray = sorted(p for p in new if not any(p == a or p.startswith(a + os.sep) for a in allowed))
        self.assertEqual(stray, [], "files written that must not be" + self.why(answer))
        after = os.stat("/etc/passwd")
        self.assertEqual((after.st_ino, after.st_size, after.st_mtime_ns),
                         (self.passwd_stat.st_ino, self.passwd_stat.st_size, self.passwd_stat.st_mtime_ns),
                         "/etc/passwd changed" + self.why(answer))

    def lmtpd_pids(self):
        """lmtpd's own PID and all its descendants (the sessions process, agents)."""
        parents = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found = [self.lmtpd.pid]
        for pid in found:
            found.extend(child for child, parent in parents.items() if parent == pid and child not in found)
        return found

    def sessions_pid(self):
        children = [p for p in self.lmtpd_pids() if p != self.lmtpd.pid and self.parent(p) == self.lmtpd.pid]
        self.assertTrue(children, "no sessions process under lmtpd" + self.why())
        return min(children)  # forked first, before any agent

    parent = staticmethod(parent_of)
    rss_kb = staticmethod(rss_kb)

    def total_rss_kb(self):
        return {pid: self.rss_kb(pid) for pid in self.lmtpd_pids()}

    def assertRssBounded(self, what, limit_kb=RSS_LIMIT_KB):
        rss = self.total_rss_kb()
        total = sum(rss.values())
        self.assertLess(total, limit_kb, f"lmtpd's processes use {rss} kB ({what})" + self.why())
        return total, rss

    def wait_for_log(self, needle, count, timeout=10):
        deadline = time.time() + timeout
        while self.log().count(needle) < count:
            if time.time() > deadline:
                self.fail(f"the log never had {count} x {needle!r}" + self.why())
            time.sleep(0.02)

    def disconnects(self):
        return self.log().count("disconnect from")

    def assertDelivered(self, user, count, answer=b""):
        found = self.maildir_files(user)
        self.assertEqual(len(found), count, f"{user} has {len(found)} messages, not {count}" + self.why(answer))
        return found

    def good_transaction(self, c, subject, stage="greeted"):
        """Goes on from `stage` with a transaction that must be delivered to alice."""
        if stage == "fresh":
            self.assertEqual(c.cmd(b"LHLO client.example")[0], 250, self.why(c.transcript))
        if stage in ("fresh", "greeted"):
            self.assertEqual(c.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(c.transcript))
        if stage != "rcpt":
            self.assertEqual(c.cmd(b"RCPT TO:<alice@test.example>")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"DATA")[0], 354, self.why(c.transcript))
        code, line = c.cmd(text(subject) + b".")
        self.assertEqual(code, 250, "the good transaction after the bad input" + self.why(c.transcript))
        self.assertIn(b"<alice@test.example>", line, self.why(c.transcript))


# (label, stage the bad line comes in, the line, expected code, expected enhanced code)
BAD_COMMANDS = [
    ("empty line", "greeted", b"", 500, b"5.5.2"),
    ("blank line", "greeted", b"   ", 500, None),
    ("unknown verb", "greeted", b"FROB the widget", 500, b"5.5.1"),
    ("NUL in verb", "greeted", b"NO\x00OP", 500, b"5.5.2"),
    ("NUL after verb", "mail", b"RCPT TO:<alice@test.example>\x00", 500, b"5.5.2"),
    ("8-bit verb", "greeted", b"N\xc3\xb6OP", 500, b"5.5.1"),
    ("8-bit byte verb", "greeted", b"\xffHLO x", 500, b"5.5.1"),
    ("control char", "greeted", b"NOOP \x1b[2J", 500, b"5.5.2"),
    ("DEL char", "greeted", b"NOOP \x7f", 500, b"5.5.2"),
    ("bare LF in command", "greeted", b"NOOP\nQUIT", 500, b"5.5.2"),
    ("bare CR in command", "greeted", b"NOOP\rQUIT", 500, b"5.5.2"),
    ("HELO in LMTP", "fresh", b"HELO client.example", 500, b"5.5.1"),
    ("EHLO in LMTP", "fresh", b"EHLO client.example", 500, b"5.5.1"),
    ("LHLO without name", "fresh", b"LHLO", 501, b"5.5.4"),
    ("MAIL before LHLO", "fresh", b"MAIL FROM:<s@example.org>", 503, b"5.5.1"),
    ("MAIL alone", "greeted", b"MAIL", 501, b"5.5.4"),
    ("MAIL without FROM:", "greeted", b"MAIL <s@example.org>", 501, b"5.5.4"),
    ("MAIL TO:", "greeted", b"MAIL TO:<s@example.org>", 501, b"5.5.4"),
    ("MAIL FROM: nothing", "greeted", b"MAIL FROM:", 501, b"5.5.4"),
    ("MAIL path with space", "greeted", b"MAIL FROM:<a b@c.example>", 553, None),
    ("MAIL <@>", "greeted", b"MAIL FROM:<@>", 553, None),
    ("MAIL unclosed <", "greeted", b"MAIL FROM:<s@example.org", 553, None),
    ("MAIL junk after >", "greeted", b"MAIL FROM:<s@example.org>junk", 501, b"5.5.4"),
    ("MAIL unknown parameter", "greeted", b"MAIL FROM:<s@example.org> FROB=1", 555, b"5.5.4"),
    ("MAIL malformed parameter", "greeted", b"MAIL FROM:<s@example.org> =1", 555, b"5.5.4"),
    ("MAIL duplicated SIZE", "greeted", b"MAIL FROM:<s@example.org> SIZE=10 SIZE=10", 555, b"5.5.4"),
    ("MAIL duplicated BODY", "greeted", b"MAIL FROM:<s@example.org> BODY=7BIT body=8BITMIME", 555, b"5.5.4"),
    ("MAIL huge SIZE", "greeted", b"MAIL FROM:<s@example.org> SIZE=" + b"9" * 40, 555, b"5.5.4"),
    ("MAIL SIZE past 2^64", "greeted", b"MAIL FROM:<s@example.org> SIZE=18446744073709551616", 555, b"5.5.4"),
    ("MAIL SIZE over the limit", "greeted", b"MAIL FROM:<s@example.org> SIZE=18446744073709551615", 552, b"5.3.4"),
    ("MAIL SIZE not a number", "greeted", b"MAIL FROM:<s@example.org> SIZE=12k", 501, b"5.5.4"),
    ("MAIL SIZE negative", "greeted", b"MAIL FROM:<s@example.org> SIZE=-1", 501, b"5.5.4"),
    ("MAIL SIZE empty", "greeted", b"MAIL FROM:<s@example.org> SIZE=", 501, b"5.5.4"),
    ("MAIL bad BODY", "greeted", b"MAIL FROM:<s@example.org> BODY=BINARYMIME", 555, b"5.5.4"),
    ("MAIL bad RET", "greeted", b"MAIL FROM:<s@example.org> RET=ALL", 501, b"5.5.4"),
    ("MAIL ENVID not xtext", "greeted", b"MAIL FROM:<s@example.org> ENVID=a+ZZ", 501, b"5.5.4"),
    ("MAIL ENVID with =", "greeted", b"MAIL FROM:<s@example.org> ENVID=a=b", 501, b"5.5.4"),
    ("MAIL ENVID 8-bit", "greeted", b"MAIL FROM:<s@example.org> ENVID=caf\xc3\xa9", 501, b"5.5.4"),
    ("MAIL ENVID too long", "greeted", b"MAIL FROM:<s@example.org> ENVID=" + b"x" * 101, 501, b"5.5.4"),
    ("MAIL ENVID empty", "greeted", b"MAIL FROM:<s@example.org> ENVID=", 501, b"5.5.4"),
    ("MAIL SMTPUTF8=yes", "greeted", b"MAIL FROM:<s@example.org> SMTPUTF8=yes", 501, b"5.5.4"),
    ("MAIL 8-bit sender without SMTPUTF8", "greeted", b"MAIL FROM:<caf\xc3\xa9@example.org>", 553, None),
    ("nested MAIL", "mail", b"MAIL FROM:<s@example.org>", 503, b"5.5.1"),
    ("RCPT before MAIL", "greeted", b"RCPT TO:<alice@test.example>", 503, b"5.5.1"),
    ("DATA before RCPT", "mail", b"DATA", 503, b"5.5.1"),
    ("DATA with argument", "rcpt", b"DATA now", 501, b"5.5.4"),
    ("verb ended by a TAB", "rcpt", b"DATA\tx", 500, b"5.5.1"),
    ("RCPT without TO:", "mail", b"RCPT <alice@test.example>", 501, b"5.5.4"),
    ("RCPT path with space", "mail", b"RCPT TO:<a b@test.example>", 553, None),
    ("RCPT <@>", "mail", b"RCPT TO:<@>", 553, None),
    ("RCPT <>", "mail", b"RCPT TO:<>", 553, None),
    ("RCPT quoted pipe", "mail", b'RCPT TO:<"|touch /tmp/mailroom-pwned"@test.example>', 550, b"5.1.1"),
    ("RCPT quoted pipe cmd", "mail", b'RCPT TO:<"|cmd"@test.example>', 550, b"5.1.1"),
    ("RCPT bare pipe", "mail", b"RCPT TO:|cmd", 550, b"5.1.1"),
    ("RCPT file path", "mail", b"RCPT TO:</etc/passwd@test.example>", 550, b"5.1.1"),
    ("RCPT bare file path", "mail", b"RCPT TO:/etc/passwd", 550, b"5.1.1"),
    ("RCPT quoted file path", "mail", b'RCPT TO:<"/etc/passwd">', 550, b"5.1.1"),
    ("RCPT dot-dot user", "mail", b"RCPT TO:<../alice@test.example>", 553, b"5.1.3"),
    ("RCPT remote domain", "mail", b"RCPT TO:<alice@elsewhere.example>", 553, b"5.1.2"),
    ("RCPT source route", "mail", b"RCPT TO:<@relay.example:alice@elsewhere.example>", 553, None),
    ("RCPT unknown parameter", "mail", b"RCPT TO:<alice@test.example> FROB", 555, b"5.5.4"),
    ("RCPT duplicated NOTIFY", "mail", b"RCPT TO:<alice@test.example> NOTIFY=NEVER NOTIFY=NEVER", 555, b"5.5.4"),
    ("RCPT duplicated ORCPT", "mail",
     b"RCPT TO:<alice@test.example> ORCPT=rfc822;a@b orcpt=rfc822;a@b", 555, b"5.5.4"),
    ("RCPT NOTIFY unknown", "mail", b"RCPT TO:<alice@test.example> NOTIFY=SOMETIMES", 501, b"5.5.4"),
    ("RCPT NOTIFY NEVER with more", "mail", b"RCPT TO:<alice@test.example> NOTIFY=NEVER,SUCCESS", 501, b"5.5.4"),
    ("RCPT NOTIFY empty", "mail", b"RCPT TO:<alice@test.example> NOTIFY=", 501, b"5.5.4"),
    ("RCPT NOTIFY no value", "mail", b"RCPT TO:<alice@test.example> NOTIFY", 501, b"5.5.4"),
    ("RCPT ORCPT without type", "mail", b"RCPT TO:<alice@test.example> ORCPT=alice@test.example", 501, b"5.5.4"),
    ("RCPT ORCPT bad xtext", "mail", b"RCPT TO:<alice@test.example> ORCPT=rfc822;a+ZZb", 501, b"5.5.4"),
    ("RCPT ORCPT empty", "mail", b"RCPT TO:<alice@test.example> ORCPT=", 501, b"5.5.4"),
    ("RCPT MAIL's parameter", "mail", b"RCPT TO:<alice@test.example> SIZE=10", 555, b"5.5.4"),
    ("STARTTLS", "greeted", b"STARTTLS", 502, b"5.5.1"),
    ("AUTH", "greeted", b"AUTH PLAIN AGFsaWNlAHNlY3JldA==", 502, b"5.5.1"),
    ("EXPN", "greeted", b"EXPN postmaster", 502, b"5.5.1"),
    ("ETRN", "greeted", b"ETRN test.example", 502, b"5.5.1"),
]


class BadCommands(HostileCase):
    def test_every_malformed_command_is_refused_and_the_session_goes_on(self):
        delivered = 0
        for label, stage, line, code, enhanced in BAD_COMMANDS:
            with self.subTest(label):
                c = self.client()
                self.assertEqual(c.reply()[0], 220, self.why(c.transcript))
                if stage != "fresh":
                    self.assertEqual(c.cmd(b"LHLO client.example")[0], 250, self.why(c.transcript))
                if stage in ("mail", "rcpt"):
                    self.assertEqual(c.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(c.transcript))
                if stage == "rcpt":
                    self.assertEqual(c.cmd(b"RCPT TO:<alice@test.example>")[0], 250, self.why(c.transcript))
                got, reply = c.cmd(line)
                self.assertIsNotNone(got, f"{label}: the server closed the session" + self.why(c.transcript))
                self.assertEqual(got, code, f"{label}: {line!r}" + self.why(c.transcript))
                self.assertRegex(reply, ENHANCED, f"{label}: no enhanced code" + self.why(c.transcript))
                if enhanced:
                    self.assertEqual(reply[4:9], enhanced, f"{label}: {line!r}" + self.why(c.transcript))
                self.assertEqual(c.cmd(b"NOOP")[0], 250, f"{label}: session did not go on" + self.why(c.transcript))
                self.good_transaction(c, b"after " + label.encode(), stage)
                delivered += 1
                self.assertEqual(c.cmd(b"QUIT")[0], 221, self.why(c.transcript))
                c.close()
                self.assertDelivered("alice", delivered, c.transcript)
        for user in ("bob", "carol", "dave", "postmaster"):
            self.assertDelivered(user, 0)
        self.assertNothingWrittenBut("alice")
        self.assertFalse(os.path.exists("/tmp/mailroom-pwned"), "a pipe recipient ran" + self.why())

    def test_bdat_without_a_size_ends_the_session(self):
        # The chunk cannot be found without its size: 501 then 421, as docs/lmtp.md says.
        answer = self.raw(GREETED + ENVELOPE + b"BDAT lots\r\nSubject: x\r\n\r\nRCPT TO:<bob@test.example>\r\n")
        self.assertEqual(codes(answer), ["220", "250", "250", "250", "501", "421"], self.why(answer))
        self.assertIn(b"421 4.7.0", answer, self.why(answer))
        self.assertDelivered("alice", 0, answer)
        self.assertDelivered("bob", 0, answer)

    def test_twenty_errors_end_the_session_and_drop_its_transaction(self):
        answer = self.raw(GREETED + ENVELOPE + b"FROB\r\n" * 25 + b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n")
        got = codes(answer)
        self.assertEqual(got, ["220", "250", "250", "250"] + ["500"] * 20 + ["421"], self.why(answer))
        self.assertIn(b"421 4.7.0", answer, self.why(answer))
        self.assertDelivered("alice", 0, answer)
        # The next connection is served.
        c = self.client()
        c.reply()
        self.good_transaction(c, b"after the errors", "fresh")
        self.assertDelivered("alice", 1)

    def test_rcpt_refusals_do_not_count_against_later_good_recipients(self):
        answer = self.raw(GREETED + b"MAIL FROM:<s@example.org>\r\n" +
                          b'RCPT TO:<"|cmd"@test.example>\r\nRCPT TO:</etc/passwd@test.example>\r\n'
                          b"RCPT TO:<bob@test.example>\r\nRCPT TO:<a b@c>\r\nDATA\r\n" + text(b"mixed") +
                          b".\r\nQUIT\r\n")
        self.assertEqual(codes(answer), ["220", "250", "250", "550", "550", "250", "553", "354", "250", "221"],
                         self.why(answer))
        self.assertDelivered("bob", 1, answer)
        self.assertNothingWrittenBut("bob", answer=answer)

    def test_data_with_only_refused_recipients_is_503(self):
        answer = self.raw(GREETED + b"MAIL FROM:<s@example.org>\r\nRCPT TO:<nosuchuser@test.example>\r\nDATA\r\n"
                          b"QUIT\r\n")
        self.assertEqual(codes(answer), ["220", "250", "250", "550", "503", "221"], self.why(answer))
        self.assertIn(b"503 5.5.1", answer, self.why(answer))

    def test_lhlo_name_cannot_forge_received(self):
        c = self.client()
        c.reply()
        forged = b"LHLO evil.example) by trusted.example (mailroom); Mon\t(x"
        self.assertEqual(c.cmd(forged)[0], 250, self.why(c.transcript))
        self.good_transaction(c, b"forged helo", "greeted")
        found = self.assertDelivered("alice", 1, c.transcript)
        received = re.search(rb"(?m)^Received: from (\S*) \(localhost\)\n\tby test\.example \(mailroom\) with LMTP",
                             found[0])
        shown = found[0][:400].decode(errors="replace") + self.why(c.transcript)
        self.assertIsNotNone(received, shown)
        self.assertNotRegex(received.group(1), rb"[();\s]", shown)
        self.assertEqual(found[0].count(b"\nReceived:") + found[0].startswith(b"Received:"), 1, shown)

    def test_extension_with_dots_and_slashes_stays_in_the_users_maildir(self):
        answer = self.raw(GREETED + b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice+../../../etc/x@test.example>\r\n"
                          b"RCPT TO:<alice+/etc/passwd@test.example>\r\n"
                          b'RCPT TO:<"bob+/../carol"@test.example>\r\nDATA\r\n' + text(b"ext") + b".\r\nQUIT\r\n")
        self.assertEqual(codes(answer), ["220", "250", "250", "553", "250", "250", "354", "250", "250", "221"],
                         self.why(answer))
        self.assertIn(b"553 5.1.3", answer, self.why(answer))
        self.assertDelivered("alice", 1, answer)
        self.assertDelivered("bob", 1, answer)
        self.assertDelivered("carol", 0, answer)
        self.assertNothingWrittenBut("alice", "bob", answer=answer)


class OverlongLines(HostileCase):
    def test_a_600_octet_noop_is_refused(self):
        c = self.client()
        c.reply()
        line = b"NOOP " + b"x" * 593
        self.assertEqual(len(line) + 2, 600)
        code, reply = c.cmd(line)
        self.assertEqual(code, 500, self.why(c.transcript))
        self.assertRegex(reply, ENHANCED, self.why(c.transcript))
        self.good_transaction(c, b"after a long noop", "fresh")
        self.assertDelivered("alice", 1, c.transcript)

    def test_512_octets_is_the_command_limit(self):
        c = self.client()
        c.reply()
        self.assertEqual(c.cmd(b"NOOP " + b"x" * 505)[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"NOOP " + b"x" * 506)[0], 500, self.why(c.transcript))
        self.assertEqual(c.cmd(b"NOOP")[0], 250, self.why(c.transcript))

    def test_a_5000_octet_rcpt_is_refused_and_the_session_goes_on(self):
        c = self.client()
        c.reply()
        self.assertEqual(c.cmd(b"LHLO client.example")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(c.transcript))
        line = b"RCPT TO:<" + b"b" * (5000 - 2 - len(b"RCPT TO:<@test.example>")) + b"@test.example>"
        self.assertEqual(len(line) + 2, 5000)
        code, reply = c.cmd(line)
        self.assertEqual((code, reply[:9]), (500, b"500 5.5.2"), self.why(c.transcript))
        # The tail of the long line was not read as a command of its own.
        self.assertEqual(c.cmd(b"NOOP")[0], 250, self.why(c.transcript))
        self.good_transaction(c, b"after a long rcpt", "mail")
        self.assertDelivered("alice", 1, c.transcript)

    def test_a_megabyte_line_without_crlf_does_not_grow_lmtpd(self):
        sessions = self.sessions_pid()
        c = self.client()
        c.reply()
        self.assertEqual(c.cmd(b"LHLO client.example")[0], 250, self.why(c.transcript))
        before, peak_before = self.rss_kb(sessions), self.rss_kb(sessions, "VmHWM")
        # One megabyte with no line end, in pieces as a slow client would send it;
        # a command that looks like MAIL so the 4096 limit applies.
        c.send(b"MAIL FROM:<")
        piece = b"A" * 65536
        for _ in range(16):
            c.send(piece)
        time.sleep(0.3)
        during = self.rss_kb(sessions)
        total_during, all_during = self.assertRssBounded("during a 1 MB line")
        c.send(b">\r\n")
        code, reply = c.reply()
        self.assertEqual((code, reply[:9]), (500, b"500 5.5.2"), self.why(c.transcript))
        after, peak = self.rss_kb(sessions), self.rss_kb(sessions, "VmHWM")
        self.assertLess(during - before, 512, f"the sessions process grew from {before} to {during} kB "
                                              "while a 1 MB line came" + self.why())
        self.assertLess(after - before, 512, f"the sessions process grew from {before} to {after} kB" + self.why())
        self.assertLess(peak - peak_before, 512, f"the sessions process peaked at {peak} kB, {peak_before} before"
                        + self.why())
        self.good_transaction(c, b"after a megabyte line", "greeted")
        self.assertDelivered("alice", 1, c.transcript)
        print(f"\n  RSS: sessions process {before} kB before, {during} kB during, {after} kB after a 1 MB line "
              f"(peak {peak_before} -> {peak} kB); all lmtpd processes {total_during} kB {all_during}", end=" ")


class LongTextLines(HostileCase):
    def test_an_8_megabyte_text_line_is_streamed_and_delivered_whole(self):
        sessions = self.sessions_pid()
        before, peak_before = self.rss_kb(sessions), self.rss_kb(sessions, "VmHWM")
        c = self.client()
        c.reply()
        self.assertEqual(c.cmd(b"LHLO client.example")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"RCPT TO:<alice@test.example>")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"DATA")[0], 354, self.why(c.transcript))
        c.send(b"Subject: one long line\r\n\r\n")
        piece = b"0123456789abcdef" * 4096
        for _ in range(128):
            c.send(piece)
        time.sleep(0.2)
        during = self.rss_kb(sessions)
        total, rss = self.assertRssBounded("during an 8 MB text line")
        code, reply = c.cmd(b"\r\n.")
        self.assertEqual(code, 250, self.why(c.transcript))
        found = self.assertDelivered("alice", 1, c.transcript)
        self.assertIn(b"\n\n" + piece * 128 + b"\n", found[0], "the line is not whole" + self.why(c.transcript))
        peak = self.rss_kb(sessions, "VmHWM")
        self.assertLess(during - before, 2048, f"the sessions process grew from {before} to {during} kB: "
                                               "the line is held whole" + self.why())
        self.assertLess(peak - peak_before, 2048, f"the sessions process peaked at {peak} kB, {peak_before} before: "
                                                  "the line was held whole" + self.why())
        print(f"\n  RSS: sessions process {before} kB before, {during} kB during an 8 MB line "
              f"(peak {peak_before} -> {peak} kB); all lmtpd processes {total} kB", end=" ")

    def test_an_8_megabyte_header_line_is_not_held_whole_either(self):
        # The mail-loop check reads the header back: an 8 MB header must not be loaded whole.
        sessions = self.sessions_pid()
        peak_before = self.rss_kb(sessions, "VmHWM")
        long_header = b"X-Long: " + b"h" * (8 << 20)
        answer = self.raw(GREETED + ENVELOPE + b"DATA\r\n" + long_header + b"\r\nSubject: after it\r\n\r\nbody\r\n"
                          b".\r\nQUIT\r\n")
        self.assertEqual(codes(answer), ["220", "250", "250", "250", "354", "250", "221"], self.why(answer))
        found = self.assertDelivered("alice", 1, answer)
        self.assertIn(long_header + b"\nSubject: after it\n\nbody\n", found[0],
                      "the header is not whole" + self.why(answer))
        peak = self.rss_kb(sessions, "VmHWM")
        self.assertLess(peak - peak_before, 2048, f"the sessions process peaked at {peak} kB, {peak_before} before"
                        + self.why(answer))


class SizeLimit(HostileCase):
    config = dict(MAILDIR, message_size_limit="10K")

    def test_oversized_messages_are_refused_and_the_session_goes_on(self):
        big = text(b"big", b"x" * 998 + b"\r\n") + (b"y" * 998 + b"\r\n") * 100
        c = self.client()
        c.reply()
        self.assertEqual(c.cmd(b"LHLO client.example")[0], 250, self.why(c.transcript))
        code, reply = c.cmd(b"MAIL FROM:<s@example.org> SIZE=20000")
        self.assertEqual((code, reply[:9]), (552, b"552 5.3.4"), self.why(c.transcript))
        # Announced small, sent big: refused after the end, once per recipient.
        self.assertEqual(c.cmd(b"MAIL FROM:<s@example.org> SIZE=100")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"RCPT TO:<alice@test.example>")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"RCPT TO:<bob@test.example>")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"DATA")[0], 354, self.why(c.transcript))
        c.send(big + b".\r\n")
        for _ in range(2):
            code, reply = c.reply()
            self.assertEqual((code, reply[:9]), (552, b"552 5.3.4"), self.why(c.transcript))
        self.assertEqual(c.cmd(b"NOOP")[0], 250, self.why(c.transcript))
        # The same in BDAT chunks.
        self.assertEqual(c.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"RCPT TO:<alice@test.example>")[0], 250, self.why(c.transcript))
        c.send(b"BDAT 6000\r\n" + big[:6000])
        self.assertEqual(c.reply()[0], 250, self.why(c.transcript))
        c.send(b"BDAT %d LAST\r\n" % (len(big) - 6000) + big[6000:])
        code, reply = c.reply()
        self.assertEqual((code, reply[:9]), (552, b"552 5.3.4"), self.why(c.transcript))
        self.good_transaction(c, b"small enough", "greeted")
        self.assertDelivered("alice", 1, c.transcript)
        self.assertDelivered("bob", 0, c.transcript)


SMUGGLE_PROBES = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r"]
SMUGGLED = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nsmuggled text\r\n")
# Where the probe sits in the text: first thing, in the middle of a line, after a line.
POSITIONS = {
    "start": (b"", b""),
    "mid-line": (b"Subject: probe\r\n\r\nbefore", b""),
    "after a line": (b"Subject: probe\r\n\r\nbefore\r\n", b""),
}


def smuggling_text(probe, position):
    prefix, _ = POSITIONS[position]
    return prefix + probe + SMUGGLED


class SmugglingReject(HostileCase):
    """smtpd_bare_newline = reject (the default): every probe refuses the message."""
    normalize = False

    def expect(self, label, answer, probe, ok_code):
        bob = self.maildir_files("bob")
        self.assertEqual(bob, [], f"{label}: a smuggled message reached bob" + self.why(answer))
        alice = self.maildir_files("alice")
        if not self.normalize:
            self.assertEqual(alice, [], f"{label}: delivered despite a bare newline" + self.why(answer))
            self.assertEqual(codes(answer)[-2:], ["550", "221"], f"{label}" + self.why(answer))
            self.assertIn(b"550 5.5.2", answer, label + self.why(answer))
        else:
            self.assertEqual(codes(answer)[-2:], [ok_code, "221"], f"{label}" + self.why(answer))
            self.assertEqual(len(alice), 1, f"{label}: not exactly one delivery" + self.why(answer))
            self.assertIn(b"MAIL FROM:<evil@example.org>\nRCPT TO:<bob@test.example>\nDATA\n", alice[0],
                          f"{label}: the smuggled commands are not in the text" + self.why(answer))
            self.assertIn(b"smuggled text\n", alice[0], label + self.why(answer))
        # Never a second transaction: one MAIL, one RCPT, one end of data.
        self.assertEqual(answer.count(b"\r\n250 2.1.0"), 1,
                         f"{label}: the smuggled MAIL was answered" + self.why(answer))
        self.assertNotIn(b"bob@test.example>", b"\r\n".join(final_lines(answer)),
                         f"{label}: the smuggled RCPT was answered" + self.why(answer))
        for user in ("alice", "bob"):
            for path in (os.path.join(self.box.mail, user, "tmp"),):
                if os.path.isdir(path):
                    self.assertEqual(os.listdir(path), [], f"{label}: left in {path}" + self.why(answer))
        # Clean the Maildir for the next probe.
        for folder in ("new", "cur"):
            path = os.path.join(self.box.mail, "alice", folder)
            if os.path.isdir(path):
                for name in os.listdir(path):
                    os.unlink(os.path.join(path, name))

    def test_probes_in_data(self):
        for probe in SMUGGLE_PROBES:
            for position in POSITIONS:
                label = f"DATA {probe!r} at {position}"
                with self.subTest(label):
                    body = smuggling_text(probe, position)
                    answer = self.raw(GREETED + ENVELOPE + b"DATA\r\n" + body + b".\r\nQUIT\r\n")
                    self.assertEqual(codes(answer), ["220", "250", "250", "250", "354", codes(answer)[-2], "221"],
                                     label + self.why(answer))
                    self.expect(label, answer, probe, "250")

    def test_probes_in_one_bdat_chunk(self):
        for probe in SMUGGLE_PROBES:
            for position in POSITIONS:
                label = f"BDAT {probe!r} at {position}"
                with self.subTest(label):
                    # The dot-line the probe holds, and the real CRLF.CRLF, are text in a chunk.
                    body = smuggling_text(probe, position) + b".\r\n"
                    answer = self.raw(GREETED + ENVELOPE + b"BDAT %d LAST\r\n" % len(body) + body + b"QUIT\r\n")
                    self.assertEqual(codes(answer), ["220", "250", "250", "250", codes(answer)[-2], "221"],
                                     label + self.why(answer))
                    self.expect(label, answer, probe, "250")

    def test_probes_split_across_bdat_chunks(self):
        for probe in SMUGGLE_PROBES:
            for cut in range(1, len(probe)):
                label = f"BDAT {probe[:cut]!r} | {probe[cut:]!r}"
                with self.subTest(label):
                    prefix = b"Subject: probe\r\n\r\nbefore"
                    first = prefix + probe[:cut]
                    second = probe[cut:] + SMUGGLED + b".\r\n"
                    answer = self.raw(GREETED + ENVELOPE + b"BDAT %d\r\n" % len(first) + first +
                                      b"BDAT %d LAST\r\n" % len(second) + second + b"QUIT\r\n")
                    self.assertEqual(codes(answer), ["220", "250", "250", "250", "250", codes(answer)[-2], "221"],
                                     label + self.why(answer))
                    self.expect(label, answer, probe, "250")

    def test_probes_sent_one_octet_at_a_time(self):
        # The decoder's state must carry across reads: each octet its own segment.
        for probe in (b"\r\n.\r", b"\n.\r\n"):
            label = f"DATA {probe!r} octet by octet"
            with self.subTest(label):
                c = self.client()
                c.reply()
                self.assertEqual(c.cmd(b"LHLO client.example")[0], 250, self.why(c.transcript))
                self.assertEqual(c.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(c.transcript))
                self.assertEqual(c.cmd(b"RCPT TO:<alice@test.example>")[0], 250, self.why(c.transcript))
                self.assertEqual(c.cmd(b"DATA")[0], 354, self.why(c.transcript))
                for octet in smuggling_text(probe, "after a line") + b".\r\n":
                    c.send(bytes([octet]))
                    time.sleep(0.0005)
                code, _ = c.reply()
                self.assertEqual(c.cmd(b"QUIT")[0], 221, self.why(c.transcript))
                self.expect(label, c.transcript, probe, "250")

    def test_crlf_split_across_chunks_is_a_line_end_and_a_trailing_cr_is_bare(self):
        first = b"Subject: split\r\n\r\nline one\r"
        second = b"\nline two\r\n"
        answer = self.raw(GREETED + ENVELOPE + b"BDAT %d\r\n" % len(first) + first +
                          b"BDAT %d LAST\r\n" % len(second) + second + b"QUIT\r\n")
        self.assertEqual(codes(answer), ["220", "250", "250", "250", "250", "250", "221"], self.why(answer))
        found = self.assertDelivered("alice", 1, answer)
        self.assertIn(b"line one\nline two\n", found[0], self.why(answer))
        # A last chunk that ends in CR: no LF can follow, it is a bare CR.
        last = b"Subject: cr\r\n\r\nends in CR\r"
        answer = self.raw(GREETED + ENVELOPE + b"BDAT %d LAST\r\n" % len(last) + last + b"QUIT\r\n")
        if self.normalize:
            self.assertEqual(codes(answer)[-2:], ["250", "221"], self.why(answer))
            self.assertDelivered("alice", 2, answer)
        else:
            self.assertIn(b"550 5.5.2", answer, self.why(answer))
            self.assertDelivered("alice", 1, answer)

    def test_refused_or_reset_text_never_reaches_a_later_message(self):
        c = self.client()
        c.reply()
        self.assertEqual(c.cmd(b"LHLO client.example")[0], 250, self.why(c.transcript))
        # A message refused for a bare LF (under reject), then a good one.
        self.assertEqual(c.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"RCPT TO:<alice@test.example>")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"DATA")[0], 354, self.why(c.transcript))
        c.send(b"X-Leak-1: data\r\n\nbare\r\n.\r\n")
        code, _ = c.reply()
        self.assertEqual(code, 250 if self.normalize else 550, self.why(c.transcript))
        # A first chunk, then RSET: the chunk is dropped.
        self.assertEqual(c.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"RCPT TO:<alice@test.example>")[0], 250, self.why(c.transcript))
        chunk = b"X-Leak-2: chunk\r\n"
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertEqual(c.reply()[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"RSET")[0], 250, self.why(c.transcript))
        # A chunk after RSET has no transaction: read and dropped.
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk.replace(b"2", b"3"))
        self.assertEqual(c.reply()[0], 503, self.why(c.transcript))
        # A first chunk, then LHLO (an implicit RSET).
        self.assertEqual(c.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"RCPT TO:<alice@test.example>")[0], 250, self.why(c.transcript))
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk.replace(b"2", b"4"))
        self.assertEqual(c.reply()[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"LHLO again.example")[0], 250, self.why(c.transcript))
        self.good_transaction(c, b"clean", "greeted")
        found = self.maildir_files("alice")
        self.assertEqual(len(found), 2 if self.normalize else 1, self.why(c.transcript))
        clean = found[-1] if not self.normalize else [m for m in found if b"Subject: clean" in m][0]
        self.assertNotIn(b"X-Leak", clean, self.why(c.transcript))
        self.assertTrue(all(b"X-Leak-2" not in m and b"X-Leak-3" not in m and b"X-Leak-4" not in m for m in found))

    def test_bare_newlines_between_commands(self):
        # "RSET\nMAIL FROM:..." must not become two commands under reject.
        answer = self.raw(GREETED + b"MAIL FROM:<s@example.org>\nRCPT TO:<bob@test.example>\r\n"
                          b"NOOP\rRCPT TO:<bob@test.example>\r\nQUIT\r\n")
        if self.normalize:
            self.assertEqual(codes(answer), ["220", "250", "250", "250", "500", "221"], self.why(answer))
        else:
            self.assertEqual(codes(answer), ["220", "250", "500", "500", "221"], self.why(answer))
            self.assertEqual(answer.count(b"500 5.5.2"), 2, self.why(answer))
        self.assertDelivered("bob", 0, answer)


class SmugglingNormalize(SmugglingReject):
    """smtpd_bare_newline = normalize: a bare newline is a line end, never an end of
    data: exactly one delivery, with the smuggled commands in its text."""
    config = dict(MAILDIR, smtpd_bare_newline="normalize")
    normalize = True


class EightBit(HostileCase):
    def test_nul_bytes_in_data_pass_unchanged(self):
        body = b"Subject: nul\r\n\r\nbefore\x00after\r\n\x00\r\nend\xff\x80\r\n"
        answer = self.raw(GREETED + ENVELOPE + b"DATA\r\n" + body + b".\r\nQUIT\r\n")
        self.assertEqual(codes(answer), ["220", "250", "250", "250", "354", "250", "221"], self.why(answer))
        found = self.assertDelivered("alice", 1, answer)
        self.assertIn(b"before\x00after\n\x00\nend\xff\x80\n", found[0], self.why(answer))

    def test_nul_bytes_in_bdat_pass_unchanged(self):
        body = b"Subject: nul\r\n\r\n\x00\x00\x00\r\n"
        answer = self.raw(GREETED + ENVELOPE + b"BDAT %d LAST\r\n" % len(body) + body + b"QUIT\r\n")
        self.assertEqual(codes(answer), ["220", "250", "250", "250", "250", "221"], self.why(answer))
        found = self.assertDelivered("alice", 1, answer)
        self.assertIn(b"\n\x00\x00\x00\n", found[0], self.why(answer))

    def test_nul_in_a_command_is_500_5_5_2(self):
        answer = self.raw(GREETED + b"MAIL FROM:<s@example.org>\x00\r\nQUIT\r\n")
        self.assertEqual(codes(answer), ["220", "250", "500", "221"], self.why(answer))
        self.assertIn(b"500 5.5.2", answer, self.why(answer))


class ManyRecipients(HostileCase):
    config = dict(MAILDIR, max_recipients="50")

    def test_ten_thousand_pipelined_rcpts(self):
        s = unix_connect(self.socket, 60)
        self.addCleanup(s.close)
        request = (GREETED + b"MAIL FROM:<s@example.org>\r\n" + b"RCPT TO:<alice@test.example>\r\n" * 10000 +
                   b"DATA\r\n" + text(b"many") + b".\r\nQUIT\r\n")
        # Replies come while the commands still go: send from a thread, read here.
        sender = threading.Thread(target=s.sendall, args=(request,))
        sender.start()
        answer = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            answer += chunk
        sender.join()
        got = codes(answer)
        expected = ["220", "250", "250"] + ["250"] * 50 + ["452"] * 9950 + ["354"] + ["250"] * 50 + ["221"]
        self.assertEqual(len(got), len(expected), f"{len(got)} replies" + self.why(answer[-2000:]))
        self.assertEqual(got, expected, self.why(answer[-2000:]))
        lines = final_lines(answer)
        self.assertTrue(all(l.startswith(b"452 4.5.3") for l in lines[53:53 + 9950]), self.why(answer[:2000]))
        self.assertTrue(all(l.startswith(b"250 2.0.0 <alice@test.example>") for l in lines[-51:-1]),
                        self.why(answer[-4000:]))
        self.assertDelivered("alice", 50, answer[-4000:])


class VanishingClients(HostileCase):
    def held_messages(self):
        """What the sessions process holds message text in: memfds, unlinked files."""
        sessions = self.sessions_pid()
        held = []
        for fd in os.listdir(f"/proc/{sessions}/fd"):
            try:
                target = os.readlink(f"/proc/{sessions}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("/memfd:") or target.endswith(" (deleted)"):
                held.append(target)
        return held

    def vanish(self, label, data, spilled=False):
        gone = self.disconnects()
        s = unix_connect(self.socket)
        try:
            s.sendall(data)
            # The text is held while the session lasts: in a memfd, past 1 MB in an
            # O_TMPFILE file, neither with a name anyone could open.
            deadline = time.time() + 5
            while True:
                held = self.held_messages()
                kind = [t for t in held if (" (deleted)" in t if spilled else t.startswith("/memfd:"))]
                if kind or time.time() > deadline:
                    break
                time.sleep(0.02)
            wanted = "spilled file" if spilled else "memfd"
            self.assertTrue(kind, f"{label}: no {wanted} held, only {held}" + self.why())
            for target in kind:
                if spilled:
                    self.assertFalse(os.path.exists(target[:-len(" (deleted)")]),
                                     f"{label}: the held text has a name: {target}" + self.why())
        finally:
            s.close()
        self.wait_for_log("disconnect from", gone + 1)
        self.assertDelivered("alice", 0)
        for folder in ("tmp", "new", "cur"):
            path = os.path.join(self.box.mail, "alice", folder)
            if os.path.isdir(path):
                self.assertEqual(os.listdir(path), [], f"{label}: left in {path}" + self.why())
        self.assertEqual(sorted(set(os.listdir(self.box.dir)) - {p for p in self.files_before if os.sep not in p}
                                - {"mailroom.log"}), [], f"{label}: left in TMPDIR" + self.why())
        self.assertEqual(self.held_messages(), [], f"{label}: the sessions process still holds the text" + self.why())
        return kind

    def open_fds(self):
        return sorted(os.listdir(f"/proc/{self.sessions_pid()}/fd"), key=int)

    def test_client_vanishes_mid_data(self):
        fds = self.open_fds()
        start = GREETED + ENVELOPE + b"DATA\r\nSubject: half\r\n\r\nthe first half\r\n"
        self.vanish("small message", start)
        # Past 1 MB the text moves to an O_TMPFILE file: it must go too.
        spilled = self.vanish("large message", start + (b"y" * 998 + b"\r\n") * 2000, spilled=True)
        self.vanish("mid chunk", GREETED + ENVELOPE + b"BDAT 100000 LAST\r\nSubject: half\r\n\r\n" + b"z" * 5000)
        self.vanish("large chunk", GREETED + ENVELOPE + b"BDAT 3000000 LAST\r\n" + b"z" * 2000000, spilled=True)
        self.vanish("between chunks", GREETED + ENVELOPE + b"BDAT 10\r\n0123456789")
        self.vanish("before the dot line's LF", start + b".\r")
        # No descriptor left behind by the vanished sessions.
        self.assertEqual(self.open_fds(), fds, "the sessions process kept descriptors" + self.why())
        # And lmtpd still serves.
        c = self.client()
        c.reply()
        self.good_transaction(c, b"after the vanished", "fresh")
        found = self.assertDelivered("alice", 1)
        self.assertIn(b"Subject: after the vanished", found[0], self.why())
        print(f"\n  a large message was held in {spilled}", end=" ")


class HalfGone(HostileCase):
    def test_a_client_gone_after_its_reply_keeps_its_message(self):
        # No QUIT: the session's end drops nothing that was acknowledged.
        gone = self.disconnects()
        s = unix_connect(self.socket)
        self.addCleanup(s.close)
        s.sendall(GREETED + ENVELOPE + b"RCPT TO:<bob@test.example>\r\nDATA\r\n" + text(b"complete") + b".\r\n")
        answer = b""
        while len(final_lines(answer)) < 8:
            chunk = s.recv(65536)
            self.assertTrue(chunk, self.why(answer))
            answer += chunk
        s.close()
        self.assertEqual(codes(answer), ["220", "250", "250", "250", "250", "354", "250", "250"], self.why(answer))
        self.wait_for_log("disconnect from", gone + 1)
        for user in ("alice", "bob"):
            found = self.assertDelivered(user, 1, answer)
            self.assertIn(b"Subject: complete", found[0], self.why(answer))
            self.assertEqual(os.listdir(os.path.join(self.box.mail, user, "tmp")), [], self.why(answer))

    def test_a_client_gone_before_any_reply_gets_at_most_one_copy(self):
        # The whole transaction sent, the socket closed before a reply is read: the
        # server may deliver (it had the whole text) or not (the client saw no 250 and
        # will send again); never twice, never a partial message, nothing left in tmp/.
        gone = self.disconnects()
        s = unix_connect(self.socket)
        s.sendall(GREETED + ENVELOPE + b"DATA\r\n" + text(b"complete") + b".\r\n")
        s.close()
        self.wait_for_log("disconnect from", gone + 1)
        found = self.maildir_files("alice")
        self.assertLessEqual(len(found), 1, self.why())
        for message in found:
            self.assertTrue(message.endswith(b"Subject: complete\n\nhello\n"), message)
        self.assertEqual(len(found), self.log().count("status=sent"), self.why())
        path = os.path.join(self.box.mail, "alice", "tmp")
        self.assertEqual(os.listdir(path) if os.path.isdir(path) else [], [], self.why())
        c = self.client()
        c.reply()
        self.good_transaction(c, b"next", "fresh")
        self.assertDelivered("alice", len(found) + 1)
        print(f"\n  a client gone before any reply: {len(found)} copies delivered", end=" ")

    def test_a_half_closed_client_gets_its_replies(self):
        s = unix_connect(self.socket)
        self.addCleanup(s.close)
        s.sendall(GREETED + ENVELOPE + b"RCPT TO:<bob@test.example>\r\nDATA\r\n" + text(b"half-closed") + b".\r\n")
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        self.assertEqual(codes(answer), ["220", "250", "250", "250", "250", "354", "250", "250"], self.why(answer))
        self.assertDelivered("alice", 1, answer)
        self.assertDelivered("bob", 1, answer)


class IdleTimeout(HostileCase):
    config = dict(MAILDIR, smtpd_timeout="2s")

    def test_200_idle_sessions_time_out(self):
        # One more, gone quiet in the middle of its DATA: it times out too, and its
        # half message goes nowhere.
        stalled = self.client()
        stalled.reply()
        self.assertEqual(stalled.cmd(b"LHLO client.example")[0], 250, self.why(stalled.transcript))
        self.assertEqual(stalled.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(stalled.transcript))
        self.assertEqual(stalled.cmd(b"RCPT TO:<alice@test.example>")[0], 250, self.why(stalled.transcript))
        self.assertEqual(stalled.cmd(b"DATA")[0], 354, self.why(stalled.transcript))
        stalled.send(b"Subject: stalled\r\n\r\nhalf of it\r\n")
        clients = []
        for i in range(200):
            s = unix_connect(self.socket, 10)
            self.addCleanup(s.close)
            clients.append(s)
        started = time.time()
        answers, closed_at = {}, {}
        sel = selectors.DefaultSelector()
        for s in clients:
            greeting = b""
            while not greeting.endswith(b"\r\n"):
                chunk = s.recv(1024)
                self.assertTrue(chunk, "closed before the greeting" + self.why())
                greeting += chunk
            self.assertTrue(greeting.startswith(b"220 "), self.why(greeting))
            answers[s] = b""
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        total, rss = self.assertRssBounded("200 idle sessions")
        # Nothing is sent; each session must end by itself after 2 s.
        while len(closed_at) < len(clients) and time.time() < started + 8:
            for key, _ in sel.select(timeout=0.5):
                chunk = key.fileobj.recv(4096)
                if chunk:
                    answers[key.fileobj] += chunk
                else:
                    closed_at[key.fileobj] = time.time() - started
                    sel.unregister(key.fileobj)
        sel.close()
        still_open = [answers[s] for s in clients if s not in closed_at]
        self.assertEqual(still_open, [], f"{len(still_open)} sessions still open after 8 s" + self.why())
        timeout = re.compile(rb"421 4\.4\.2 [^\r\n]*timeout[^\r\n]*\r\n")
        wrong = [answers[s] for s in clients if not timeout.fullmatch(answers[s])]
        self.assertEqual(wrong, [], "sessions that did not end with 421 4.4.2 ... timeout" + self.why())
        first, last = min(closed_at.values()), max(closed_at.values())
        self.assertGreater(first, 1.0, "closed well before smtpd_timeout" + self.why())
        self.assertLess(last, 5.0, "closed long after smtpd_timeout" + self.why())
        code, reply = stalled.reply()
        self.assertEqual((code, reply[:9]), (421, b"421 4.4.2"), self.why(stalled.transcript))
        self.assertEqual(stalled.until_close(), b"", self.why(stalled.transcript))
        self.assertDelivered("alice", 0, stalled.transcript)
        tmp = os.path.join(self.box.mail, "alice", "tmp")
        self.assertEqual(os.listdir(tmp) if os.path.isdir(tmp) else [], [], self.why(stalled.transcript))
        # And a fresh connection is served.
        c = self.client()
        self.assertEqual(c.reply()[0], 220, self.why(c.transcript))
        self.good_transaction(c, b"after the idle ones", "fresh")
        self.assertDelivered("alice", 1)
        print(f"\n  RSS with 200 idle sessions open: {total} kB in all {rss}; closed after {first:.2f}..{last:.2f} s",
              end=" ")

    def test_a_client_that_never_reads_its_replies_is_dropped(self):
        s = unix_connect(self.socket, 15)
        self.addCleanup(s.close)
        request = GREETED + b"NOOP\r\n" * 300000
        failed = []

        def send():
            try:
                s.sendall(request)
            except OSError as e:
                failed.append(e)

        started = time.time()
        sender = threading.Thread(target=send)
        sender.start()
        sender.join(timeout=15)
        self.assertFalse(sender.is_alive(), "lmtpd neither read nor dropped a client that does not read" + self.why())
        total, rss = self.assertRssBounded("a client that does not read")
        self.assertTrue(failed, "all 1.8 MB of NOOPs were taken by a client that read nothing" + self.why())
        self.assertLess(time.time() - started, 8, self.why())
        self.assertIsNone(self.lmtpd.poll(), "lmtpd died" + self.why())
        c = self.client()
        c.reply()
        self.good_transaction(c, b"after the deaf client", "fresh")
        self.assertDelivered("alice", 1)
        print(f"\n  RSS with a client not reading its replies: {total} kB", end=" ")


class Flood(HostileCase):
    tcp = True

    def test_1000_connections_opened_and_dropped(self):
        clients = []
        self.addCleanup(lambda: [s.close() for s in clients])
        rounds = []
        for flood in range(2):
            for i in range(1000):
                clients.append(unix_connect(self.socket))
            for s in clients:
                s.close()
            self.wait_for_sessions_to_end(1001 + 1000 * flood)
            rounds.append(self.rss_kb(self.sessions_pid()))
        # Memory kept after the first flood is reused by the second, not added to.
        self.assertLess(rounds[1] - rounds[0], 2048, f"the sessions process grew from {rounds[0]} kB after one "
                                                     f"flood to {rounds[1]} kB after two" + self.why())
        # And over TCP, reset rather than closed.
        for i in range(500):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            clients.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        for s in clients:
            s.close()
        self.assertIsNone(self.lmtpd.poll(), "lmtpd died" + self.why())
        self.wait_for_sessions_to_end(2501)
        total, rss = self.assertRssBounded("after a flood")
        c = self.client(tcp=True)
        self.assertEqual(c.reply()[0], 220, self.why(c.transcript))
        self.good_transaction(c, b"after the flood", "fresh")
        self.assertDelivered("alice", 1)
        print(f"\n  RSS of the sessions process after 1000 dropped connections: {rounds[0]} kB, after 2000: "
              f"{rounds[1]} kB; all lmtpd processes after 2500: {total} kB", end=" ")

    def wait_for_sessions_to_end(self, count):
        """Every session ends: none is stuck on a peer that is gone."""
        deadline = time.time() + 20
        while True:
            log = self.log()
            connects, disconnects = len(re.findall(r"\bconnect from", log)), log.count("disconnect from")
            if connects == disconnects and connects >= count:
                return
            if time.time() > deadline:
                self.fail(f"{connects} connects, {disconnects} disconnects, {count} expected" + self.why())
            time.sleep(0.1)

    def test_the_1001st_session_is_told_to_come_back(self):
        clients = []
        for i in range(1000):
            s = unix_connect(self.socket, 10)
            self.addCleanup(s.close)
            clients.append(s)
        for s in clients:
            self.assertTrue(s.recv(1024).startswith(b"220 "), self.why())
        total, rss = self.assertRssBounded("1000 sessions open", 1 << 30)
        extra = unix_connect(self.socket, 10)
        with extra:
            answer = b""
            while True:
                chunk = extra.recv(1024)
                if not chunk:
                    break
                answer += chunk
        self.assertTrue(answer.startswith(b"421 4.3.2"), self.why(answer))
        self.assertIsNone(self.lmtpd.poll(), "lmtpd died" + self.why())
        for s in clients:
            s.close()
        deadline = time.time() + 10
        while True:
            try:
                c = Client(self)
                self.addCleanup(c.close)
                code, reply = c.reply()
                if code == 220:
                    break
                c.close()
            except OSError:
                pass
            if time.time() > deadline:
                self.fail("no session served after the 1000 ended" + self.why())
            time.sleep(0.05)
        self.good_transaction(c, b"after the limit", "fresh")
        self.assertDelivered("alice", 1)
        print(f"\n  RSS with 1000 sessions open: {total} kB", end=" ")


class Sigterm(HostileCase):
    def test_sigterm_finishes_the_message_in_progress(self):
        busy = self.client()
        busy.reply()
        self.assertEqual(busy.cmd(b"LHLO client.example")[0], 250, self.why(busy.transcript))
        self.assertEqual(busy.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(busy.transcript))
        self.assertEqual(busy.cmd(b"RCPT TO:<alice@test.example>")[0], 250, self.why(busy.transcript))
        self.assertEqual(busy.cmd(b"DATA")[0], 354, self.why(busy.transcript))
        busy.send(b"Subject: sigterm\r\n\r\nthe first half\r\n")
        # A session with an envelope but no data yet: also a transaction in progress.
        enveloped = self.client()
        enveloped.reply()
        self.assertEqual(enveloped.cmd(b"LHLO client.example")[0], 250, self.why(enveloped.transcript))
        self.assertEqual(enveloped.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(enveloped.transcript))
        self.assertEqual(enveloped.cmd(b"RCPT TO:<bob@test.example>")[0], 250, self.why(enveloped.transcript))
        idle = self.client()
        idle.reply()
        self.assertEqual(idle.cmd(b"LHLO client.example")[0], 250, self.why(idle.transcript))
        fresh = self.client()
        fresh.reply()
        time.sleep(0.2)
        self.lmtpd.send_signal(signal.SIGTERM)
        for name, c in (("idle", idle), ("fresh", fresh)):
            code, reply = c.reply()
            self.assertEqual((code, reply[:9]), (421, b"421 4.3.2"), f"{name} session" + self.why(c.transcript))
            self.assertEqual(c.until_close(), b"", f"{name} session not closed" + self.why(c.transcript))
        # No new session is taken.
        try:
            late = Client(self, timeout=2)
            late_answer = late.until_close()
            late.close()
            self.assertFalse(late_answer.startswith(b"220"), "a new session after SIGTERM" + self.why(late_answer))
        except OSError:
            pass
        # Impatient admins: more signals change nothing.
        self.lmtpd.send_signal(signal.SIGTERM)
        self.lmtpd.send_signal(signal.SIGINT)
        time.sleep(0.2)
        self.assertIsNone(self.lmtpd.poll(), "lmtpd ended before the message in progress" + self.why())
        busy.send(b"the second half\r\n.\r\n")
        code, reply = busy.reply()
        self.assertEqual(code, 250, "the message in progress" + self.why(busy.transcript))
        self.assertIn(b"<alice@test.example>", reply, self.why(busy.transcript))
        code, reply = busy.reply()
        self.assertEqual((code, reply[:9]), (421, b"421 4.3.2"), "after its message" + self.why(busy.transcript))
        self.assertEqual(busy.until_close(), b"", self.why(busy.transcript))
        self.assertEqual(enveloped.cmd(b"DATA")[0], 354, self.why(enveloped.transcript))
        code, reply = enveloped.cmd(text(b"enveloped") + b".")
        self.assertEqual(code, 250, self.why(enveloped.transcript))
        code, reply = enveloped.reply()
        self.assertEqual((code, reply[:9]), (421, b"421 4.3.2"), self.why(enveloped.transcript))
        last_session = time.time()
        try:
            status = self.lmtpd.wait(timeout=5)
        except Exception:
            self.fail("lmtpd did not exit within 5 s of the last session" + self.why())
        print(f"\n  lmtpd exited {status} {time.time() - last_session:.2f} s after its last session ended", end=" ")
        self.assertEqual(status, 0, self.why())
        found = self.assertDelivered("alice", 1)
        self.assertIn(b"the first half\nthe second half\n", found[0], self.why(busy.transcript))
        self.assertDelivered("bob", 1)
        for user in ("alice", "bob"):
            self.assertEqual(os.listdir(os.path.join(self.box.mail, user, "tmp")), [], self.why())


if __name__ == "__main__":
    mrtest.main()
