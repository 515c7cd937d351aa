#!/usr/bin/env python3
"""lmtpd against Python's smtplib.LMTP and raw sockets: per-recipient replies,
pipelining, BDAT, DSN parameters, 8-bit text, a large message; what lands is read
back with Python's mailbox module."""
import email
import os
import shutil
import smtplib
import subprocess
import unittest

import lmtptest
import mrtest


class Lmtpd(lmtptest.LmtpdCase):
    tcp = True

    def lmtp(self):
        client = smtplib.LMTP(self.socket)
        client.ehlo_or_helo_if_needed()
        return client

    def test_mixed_outcomes_give_one_reply_per_recipient(self):
        client = self.lmtp()
        self.addCleanup(client.close)
        client.ehlo("client.example")  # smtplib.LMTP sends LHLO
        self.assertIn("pipelining", client.esmtp_features)
        self.assertIn("chunking", client.esmtp_features)
        self.assertIn("dsn", client.esmtp_features)
        code, _ = client.mail("sender@example.org")
        self.assertEqual(code, 250)
        self.assertEqual(client.rcpt("alice@test.example")[0], 250)
        code, text = client.rcpt("nosuchuser@test.example")
        self.assertEqual(code, 550, text)
        self.assertIn(b"5.1.1", text)
        self.assertEqual(client.rcpt("bob")[0], 250)
        # smtplib.LMTP has no per-recipient data API: read the two replies by hand.
        code, _ = client.docmd("DATA")
        self.assertEqual(code, 354)
        client.send(mrtest.message(subject="mixed").replace("\n", "\r\n").encode() + b".\r\n")
        replies = [client.getreply(), client.getreply()]
        self.assertEqual([r[0] for r in replies], [250, 250], replies)
        self.assertIn(b"<alice@test.example>", replies[0][1])
        self.assertIn(b"<bob>", replies[1][1])
        for user in ("alice", "bob"):
            found = self.maildir_messages(user)
            self.assertEqual(len(found), 1, self.log())
            self.assertEqual(found[0]["Subject"], "mixed")
            self.assertEqual(found[0]["Return-Path"], "<sender@example.org>")
            self.assertTrue(found[0]["Received"].startswith("from client.example"), found[0]["Received"])
        self.assertEqual(self.maildir_messages("carol"), [])

    @unittest.skipUnless(mrtest.IS_ROOT, "the privilege split needs root")
    def test_sessions_run_as_default_privs_and_agents_as_their_users(self):
        client = self.lmtp()
        self.addCleanup(client.close)
        self.assertEqual(client.sendmail("s@example.org", ["alice@test.example"], b"Subject: x\r\n\r\ny\r\n"), {})
        uids = {}
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/status") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            if status.get("PPid", "").strip() == str(self.lmtpd.pid):
                uids[int(pid)] = int(status["Uid"].split()[0])
        # Children of the root side: the sessions process (nobody, 65534 in the
        # sandbox's passwd) and alice's agent (her uid); none of them root.
        self.assertIn(65534, uids.values(), uids)
        self.assertIn(self.box.uids["alice"], uids.values(), uids)
        self.assertNotIn(0, uids.values(), uids)

    def test_sendmail_through_smtplib_lmtp_over_tcp(self):
        client = smtplib.LMTP("127.0.0.1", self.port)
        self.addCleanup(client.close)
        refused = client.sendmail("sender@example.org", ["carol@test.example"],
                                  mrtest.message(subject="tcp", body="caf\u00e9 8-bit\n").replace("\n", "\r\n").encode())
        self.assertEqual(refused, {})
        found = self.maildir_messages("carol")
        self.assertEqual(len(found), 1, self.log())
        self.assertIn("caf\u00e9".encode(), found[0].as_bytes())

    def test_pipelined_commands_get_their_replies_in_order(self):
        body = mrtest.message(subject="pipelined").replace("\n", "\r\n").encode()
        answer = self.raw(b"LHLO x\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@test.example>\r\n"
                          b"RCPT TO:<nobody-here@test.example>\r\nRCPT TO:<dave@test.example>\r\nDATA\r\n" +
                          body + b".\r\nQUIT\r\n")
        codes = [line[:3] for line in answer.split(b"\r\n") if line[3:4] == b" "]
        self.assertEqual(codes, [b"220", b"250", b"250", b"250", b"550", b"250", b"354", b"250", b"250", b"221"],
                         answer)
        self.assertEqual(len(self.maildir_messages("alice")), 1)
        self.assertEqual(len(self.maildir_messages("dave")), 1)

    def test_bdat_chunks_deliver_the_joined_text(self):
        part1 = b"Subject: chunked\r\n\r\nfirst half, "
        part2 = b"second half\r\n.not a dot line\r\n"
        answer = self.raw(b"LHLO x\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@test.example>\r\n" +
                          b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT %d LAST\r\n" % len(part2) + part2 +
                          b"QUIT\r\n")
        self.assertIn(b"250 2.0.0 %d octets received" % len(part1), answer)
        found = self.maildir_messages("alice")
        self.assertEqual(len(found), 1, answer)
        self.assertIn(b"first half, second half\n.not a dot line\n", found[0].as_bytes())

    def test_dsn_parameters_are_accepted(self):
        answer = self.raw(b"LHLO x\r\nMAIL FROM:<s@example.org> RET=HDRS ENVID=abc+2B1 SIZE=100 BODY=8BITMIME\r\n"
                          b"RCPT TO:<bob@test.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@test.example\r\n"
                          b"DATA\r\nSubject: dsn\r\n\r\nx\r\n.\r\nQUIT\r\n")
        self.assertNotIn(b"\r\n5", answer)
        self.assertEqual(len(self.maildir_messages("bob")), 1, answer)
        self.assertIn("orig_to=<rfc822;bob@test.example>", self.log())

    def test_a_30_megabyte_message_arrives_whole(self):
        line = b"x" * 998 + b"\r\n"
        count = 30 * 1024 * 1024 // len(line) + 1
        body = b"Subject: big\r\n\r\n" + line * count + b"the end\r\n"
        client = self.lmtp()
        self.addCleanup(client.close)
        self.assertEqual(client.sendmail("s@example.org", ["dave@test.example"], body), {})
        found = self.maildir_messages("dave")
        self.assertEqual(len(found), 1)
        text = found[0].as_bytes()
        self.assertEqual(text.count(b"x" * 998 + b"\n"), count)
        self.assertTrue(text.endswith(b"the end\n"))


class Mbox(lmtptest.LmtpdCase):
    config = {"mailbox_format": "mbox", "lock_timeout": "1s"}

    def test_a_locked_mailbox_defers_that_recipient_alone(self):
        import fcntl
        self.assertEqual(self.box.mda(["bob"], mrtest.message(subject="first")).returncode, 0)
        with open(self.box.mbox_path("bob"), "r+") as held:
            fcntl.lockf(held, fcntl.LOCK_EX)
            answer = self.raw(b"LHLO x\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@test.example>\r\n"
                              b"RCPT TO:<bob@test.example>\r\nDATA\r\nSubject: locked\r\n\r\nx\r\n.\r\nQUIT\r\n")
        replies = [line for line in answer.split(b"\r\n") if line.startswith((b"250 2.0.0 <", b"4", b"5"))]
        self.assertEqual(len(replies), 2, answer)
        self.assertTrue(replies[0].startswith(b"250 2.0.0 <alice@test.example>"), answer)
        self.assertRegex(replies[1], rb"^45[0-9] 4\.[0-9.]+ <bob@test.example> .*lock", answer)
        self.assertEqual([m["Subject"] for m in self.box.mbox("alice")], ["locked"])
        self.assertEqual([m["Subject"] for m in self.box.mbox("bob")], ["first"])


def ipv6_loopback():
    import socket
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Modes(mrtest.TestCase):
    config = {"mailbox_format": "maildir"}

    def test_inetd_mode_serves_one_session_on_stdin_and_stdout(self):
        script = (b"LHLO inetd.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@test.example>\r\n"
                  b"DATA\r\nSubject: inetd\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        out = self.box.run("lmtpd", ["-i"], script, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        codes = [line[:4] for line in out.stdout.split(b"\r\n") if line]
        self.assertEqual(codes[0], b"220 ", out.stdout)
        self.assertIn(b"250 2.0.0 <alice@test.example> delivered", out.stdout)
        self.assertTrue(out.stdout.endswith(b"221 2.0.0 Bye\r\n"), out.stdout)
        box = self.box.maildir(f"{self.box.mail}/alice")
        self.assertEqual([m["Subject"] for m in box], ["inetd"])

    @unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback here")
    def test_an_ipv6_listener_is_served(self):
        port = lmtptest.free_port()
        lmtpd = self.box.popen("lmtpd", ["-l", f"[::1]:{port}"])
        self.addCleanup(lambda: (lmtpd.terminate(), lmtpd.wait(), lmtpd.stdout.close(), lmtpd.stderr.close()))
        import socket
        import time
        deadline = time.time() + 10
        while True:
            try:
                client = smtplib.LMTP("::1", port)
                break
            except OSError:
                if time.time() > deadline:
                    self.fail("lmtpd did not listen on [::1]")
                time.sleep(0.05)
        with client:
            self.assertEqual(client.sendmail("s@example.org", ["dave@test.example"],
                                             b"Subject: v6\r\n\r\nover IPv6\r\n"), {})
        box = self.box.maildir(f"{self.box.mail}/dave")
        found = list(box)
        self.assertEqual(len(found), 1)
        self.assertIn("[::1]", found[0]["Received"])

    def test_a_bad_listen_address_is_refused_at_start(self):
        out = self.box.run("lmtpd", ["-l", "inet:127.0.0.1:99999"])
        self.assertEqual(out.returncode, 78, out.stderr)
        self.assertIn(b"lmtpd: error: bad port", out.stderr)
        out = self.box.run("lmtpd", ["-l", "unix:relative/path"])
        self.assertEqual(out.returncode, 78, out.stderr)
        out = self.box.run("lmtpd", ["-i", "-l", "unix:/tmp/x"])
        self.assertEqual(out.returncode, 64, out.stderr)


@unittest.skipUnless(shutil.which("swaks"), "swaks is not installed")
class Swaks(lmtptest.LmtpdCase):
    tcp = True

    def swaks(self, args):
        return subprocess.run(["swaks", "--protocol", "LMTP", "--from", "sender@example.org",
                               "--helo", "swaks.example", "--timeout", "20"] + args,
                              capture_output=True, timeout=60)

    def test_swaks_on_the_unix_socket_with_pipelining_and_mixed_recipients(self):
        out = self.swaks(["--socket", self.socket, "--pipeline", "--to", "alice@test.example,nosuch@test.example,bob",
                          "--header", "Subject: from swaks", "--body", "pipelined body"])
        text = out.stdout.decode(errors="replace")
        self.assertIn("250 2.1.5", text)
        self.assertIn("550 5.1.1", text)
        self.assertRegex(text, r"250 2.0.0 <alice@test.example> delivered")
        self.assertRegex(text, r"250 2.0.0 <bob> delivered")
        for user in ("alice", "bob"):
            found = self.maildir_messages(user)
            self.assertEqual([m["Subject"] for m in found], ["from swaks"], text)

    def test_swaks_over_tcp_delivers(self):
        # 8-bit text is tested with smtplib above: swaks re-encodes non-ASCII arguments.
        out = self.swaks(["--server", "127.0.0.1", "--port", str(self.port), "--to", "carol@test.example",
                          "--header", "Subject: over tcp", "--body", "a line\n.a dot line"])
        self.assertEqual(out.returncode, 0, out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace"))
        found = self.maildir_messages("carol")
        self.assertEqual(len(found), 1)
        self.assertIn(b"\n.a dot line", found[0].as_bytes())


if __name__ == "__main__":
    mrtest.main()
