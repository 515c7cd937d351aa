"""The SMTP listener of `mta -d` (SPEC 7, docs/smtpd.md) with real clients:
Python's smtplib and swaks, plain, STARTTLS, implicit TLS, AUTH PLAIN and LOGIN
against PAM (pam_wrapper + pam_matrix), relay control, the submission port, and
the extensions; every message read back from the mailbox with Python's mailbox."""
import base64
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

import mrtest
from smtp_probes import children, uids as uid_of
import smtptest
from smtptest import PASSWORDS


def raw_session(port, lines, read_timeout=5.0):
    """Sends `lines` (bytes) in one write after the greeting; returns all replies
    until the server closes or stays quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        s.recv(4096)
        s.sendall(lines)
        data = b""
        s.settimeout(read_timeout)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        return data.decode(errors="replace")


def message(subject, sender="alice@test.example", to="bob@test.example", body="hello\r\n"):
    return f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}"


class Plain(smtptest.SmtpCase):
    def test_a_message_to_a_local_user_is_queued_then_delivered(self):
        with self.box.smtp() as client:
            code, ehlo = client.ehlo()
            self.assertEqual(code, 250)
            for extension in (b"PIPELINING", b"SIZE", b"8BITMIME", b"SMTPUTF8", b"CHUNKING", b"DSN",
                              b"ENHANCEDSTATUSCODES", b"STARTTLS", b"ETRN"):
                self.assertIn(extension, ehlo)
            self.assertNotIn(b"AUTH", ehlo)  # only under TLS
            refused = client.sendmail("alice@example.org", ["bob@test.example"], message("plain"))
            self.assertEqual(refused, {})
        box = self.wait_delivered("bob")
        received = box[0].get_all("Received")[0]
        self.assertRegex(received, r"from client\.example \(localhost \[127\.0\.0\.1\]\)\s+by test\.example \(mailroom\) with ESMTP id")
        self.assertIn("bob@test.example", box[0]["Delivered-To"])
        self.assertIn("client=localhost[127.0.0.1]", self.box.log_text())

    def test_unknown_local_user_is_refused_at_rcpt(self):
        with self.box.smtp() as client:
            client.ehlo()
            client.mail("alice@example.org")
            code, text = client.rcpt("nosuchuser@test.example")
            self.assertEqual(code, 550)
            self.assertIn(b"5.1.1", text)
            code, _ = client.rcpt("bob")
            self.assertEqual(code, 250)

    def test_an_alias_is_a_known_recipient_with_or_without_its_extension(self):
        self.box.write("aliases", "team: bob\nteam+ops: carol\n")
        self.assertExit(self.box.run("newaliases", []), 0)
        with self.box.smtp() as client:
            client.ehlo()
            client.mail("a@example.org")
            for known in ("team@test.example", "team+ops@test.example", "team+x@test.example"):
                self.assertEqual(client.rcpt(known)[0], 250, known)
            self.assertEqual(client.rcpt("teamx@test.example")[0], 550)

    def test_addresses_from_outside_are_never_commands_or_files(self):
        with self.box.smtp() as client:
            client.ehlo()
            client.mail("alice@example.org")
            for hostile in ('"|touch /tmp/mailroom-pwned"@test.example', "/etc/passwd@test.example"):
                code, _ = client.rcpt(hostile)
                self.assertEqual(code // 100, 5, hostile)
        self.assertFalse(os.path.exists("/tmp/mailroom-pwned"))

    def test_pipelined_transaction_and_bdat(self):
        text = message("bdat").encode()
        replies = raw_session(self.box.smtp_port,
                              b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<carol@test.example>\r\n" +
                              f"BDAT {len(text)} LAST\r\n".encode() + text + b"QUIT\r\n")
        self.assertIn("250 2.0.0 Ok: queued as ", replies)
        self.assertIn("221 2.0.0", replies)
        box = self.wait_delivered("carol")
        self.assertEqual(box[0]["Subject"], "bdat")

    def test_size_refusal(self):
        with self.box.smtp() as client:
            client.ehlo()
            limit = client.esmtp_features["size"]
            code, text = client.mail("a@example.org", ["SIZE=%d" % (int(limit) + 1)])
            self.assertEqual(code, 552)
            self.assertIn(b"5.3.4", text)

    def test_8bitmime_and_smtputf8(self):
        with self.box.smtp() as client:
            client.ehlo()
            body = "From: a@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\ncaf\u00e9 \u00fcber\r\n".encode()
            client.sendmail("a@example.org", ["dave@test.example"], body, mail_options=["BODY=8BITMIME"])
            client.sendmail("j\u00f6rg@example.org", ["dave@test.example"], body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        box = self.wait_delivered("dave", 2)
        # Raw bytes: the two are delivered in either order, and Python's mbox reader
        # cannot decode the From_ line of the one with the UTF-8 sender.
        raw = [box.get_bytes(key) for key in box.keys()]
        self.assertEqual(len(raw), 2)
        for text in raw:
            self.assertIn("\ncaf\u00e9 \u00fcber\n".encode(), text)
        self.assertTrue(any(b"j\xc3\xb6rg@example.org" in text for text in raw))

    def test_starttls_then_a_message(self):
        with self.box.smtp() as client:
            client.ehlo()
            client.starttls(context=self.box.client_context())
            code, ehlo = client.ehlo()
            self.assertNotIn(b"STARTTLS", ehlo)
            self.assertIn(b"AUTH PLAIN LOGIN", ehlo)
            client.sendmail("alice@example.org", ["bob@test.example"], message("tls"))
        box = self.wait_delivered("bob")
        received = box[0].get_all("Received")[0]
        self.assertRegex(received, r"\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)")
        self.assertIn("with ESMTPS id", received)
        self.assertIn("TLS connection established from localhost[127.0.0.1]", self.box.log_text())

    def test_tls_before_1_2_is_refused(self):
        context = self.box.client_context()
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            context.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with self.box.smtp() as client:
            client.ehlo()
            with self.assertRaises((ssl.SSLError, OSError, smtplib.SMTPException)):
                client.starttls(context=context)

    def test_plaintext_injected_after_starttls_is_refused(self):
        replies = raw_session(self.box.smtp_port, b"EHLO c.example\r\nSTARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
        self.assertIn("554 5.5.1", replies)
        self.assertNotIn("220 2.0.0", replies)
        self.assertNotIn("250 2.1.0", replies)

    def test_openssl_s_client_starttls_with_injected_plaintext(self):
        if not shutil.which("openssl"):
            self.skipTest("openssl not installed")
        # s_client's -starttls smtp sends EHLO and STARTTLS itself; the injected
        # command goes in the same packet as a raw client would (the
        # CVE-2011-0411 probe): here the server must not answer it under TLS.
        with socket.create_connection(("127.0.0.1", self.box.smtp_port), timeout=5) as s:
            s.recv(4096)
            s.sendall(b"EHLO c.example\r\n")
            s.recv(4096)
            s.sendall(b"STARTTLS\r\nRSET\r\n")
            time.sleep(0.3)
            got = s.recv(4096).decode(errors="replace")
        self.assertIn("554 5.5.1", got)
        result = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{self.box.smtp_port}",
                                 "-quiet", "-verify_return_error", "-CAfile", self.box.cert],
                                input=b"EHLO c.example\r\nQUIT\r\n", capture_output=True, timeout=30)
        self.assertIn(b"250", result.stdout)
        self.assertIn(b"221", result.stdout)

    def test_auth_is_refused_without_tls(self):
        replies = raw_session(self.box.smtp_port, b"EHLO c.example\r\nAUTH PLAIN " +
                              base64.b64encode(b"\0alice\0alice-secret") + b"\r\nQUIT\r\n")
        self.assertIn("538 5.7.11", replies)

    def test_etrn_is_accepted(self):
        replies = raw_session(self.box.smtp_port, b"EHLO c.example\r\nETRN far.example\r\nQUIT\r\n")
        self.assertIn("250 2.0.0 Queuing started", replies)


class Ipv6(smtptest.SmtpCase):
    """smtpd_listen with an IPv4 and an IPv6 address."""
    def setUp(self):
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            self.skipTest("no ::1 on this machine")
        self.port6 = smtptest.free_port()
        self.box = smtptest.SmtpBox(submission=False, smtps=False)
        self.addCleanup(self.box.cleanup)
        self.box.add_config(smtpd_listen=f"127.0.0.1:{self.box.smtp_port}, [::1]:{self.port6}")
        self.box.start()

    def test_a_message_over_ipv6(self):
        with smtplib.SMTP("::1", self.port6, local_hostname="client.example", timeout=30) as client:
            client.ehlo()
            client.sendmail("a@example.org", ["bob@test.example"], message("over ipv6"))
        box = self.wait_delivered("bob")
        self.assertRegex(box[0].get_all("Received")[0], r"\(localhost \[::1\]\)")


class Auth(smtptest.SmtpCase):
    def setUp(self):
        smtptest.skip_unless_pam(self)
        super().setUp()

    def submit(self, mechanism, user, password, sender):
        client = self.box.smtp(self.box.submission_port)
        client.ehlo()
        client.starttls(context=self.box.client_context())
        client.ehlo()
        client.user, client.password = user, password
        if mechanism == "PLAIN":
            client.auth("PLAIN", client.auth_plain)
        else:
            client.auth("LOGIN", client.auth_login)
        return client

    def test_auth_plain_on_submission_then_a_message(self):
        client = self.submit("PLAIN", "alice", PASSWORDS["alice"], "alice@test.example")
        client.sendmail("alice@test.example", ["bob@test.example"], message("auth plain"))
        client.quit()
        box = self.wait_delivered("bob")
        received = box[0].get_all("Received")[0]
        self.assertIn("with ESMTPSA id", received)
        self.assertIn("(Authenticated sender: alice)", received)
        log = self.box.log_text()
        self.assertIn("sasl_username=alice", log)
        self.assertNotIn(PASSWORDS["alice"], log)

    def test_auth_login_with_a_password_holding_spaces(self):
        client = self.submit("LOGIN", "bob", PASSWORDS["bob"], "bob@test.example")
        client.sendmail("bob+lists@test.example", ["carol@test.example"], message("auth login"))
        client.quit()
        self.wait_delivered("carol")

    def test_a_wrong_password_is_refused_slowly_and_the_third_ends_the_session(self):
        client = self.box.smtp(self.box.submission_port)
        client.ehlo()
        client.starttls(context=self.box.client_context())
        client.ehlo()
        started = time.time()
        for attempt in range(2):
            code, text = client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0wrong").decode())
            self.assertEqual(code, 535)
        self.assertGreaterEqual(time.time() - started, 2.5)  # 1 s, then 2 s
        code, text = client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0wrong").decode())
        self.assertEqual(code, 535)
        with self.assertRaises(smtplib.SMTPServerDisconnected):
            client.noop()
            client.noop()
        log = self.box.log_text()
        self.assertIn("SASL authentication failed", log)
        self.assertNotIn("wrong", log.replace("wrong password", ""))

    def test_submission_wants_auth_before_mail(self):
        client = self.box.smtp(self.box.submission_port)
        client.ehlo()
        code, text = client.mail("alice@test.example")
        self.assertEqual(code, 530)
        client.quit()

    def test_an_authenticated_user_sends_only_as_themselves(self):
        client = self.submit("PLAIN", "alice", PASSWORDS["alice"], "alice@test.example")
        code, text = client.mail("bob@test.example")
        self.assertEqual(code, 553)
        self.assertIn(b"not owned by user alice", text)
        client.quit()

    def test_implicit_tls_port(self):
        client = smtplib.SMTP_SSL("127.0.0.1", self.box.smtps_port, local_hostname="client.example",
                                  context=self.box.client_context(), timeout=30)
        code, ehlo = client.ehlo()
        self.assertNotIn(b"STARTTLS", ehlo)
        client.login("alice", PASSWORDS["alice"])
        client.sendmail("alice@test.example", ["bob@test.example"], message("smtps"))
        client.quit()
        box = self.wait_delivered("bob")
        self.assertIn("with ESMTPSA id", box[0].get_all("Received")[0])

    def test_authenticated_client_may_relay(self):
        client = self.submit("PLAIN", "alice", PASSWORDS["alice"], "alice@test.example")
        client.mail("alice@test.example")
        code, _ = client.rcpt("someone@far.example")
        self.assertEqual(code, 250)
        client.quit()

    def test_swaks_auth_login_over_starttls(self):
        if not shutil.which("swaks"):
            self.skipTest("swaks not installed")
        result = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.box.submission_port),
                                 "--tls", "--tls-verify", "--tls-ca-path", self.box.cert,
                                 "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", PASSWORDS["alice"],
                                 "--from", "alice@test.example", "--to", "dave@test.example",
                                 "--helo", "client.example", "--header", "Subject: swaks"],
                                capture_output=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout.decode(errors="replace")[-2000:])
        box = self.wait_delivered("dave")
        self.assertEqual(box[0]["Subject"], "swaks")


def listener_processes(daemon_pid, timeout=10.0):
    """(root side, sessions process) of the listener under `daemon_pid`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for child in children(daemon_pid):
            grandchildren = children(child)
            if len(grandchildren) == 1 and uid_of(child)[:1] == [0]:
                return child, grandchildren[0]
        time.sleep(0.1)
    raise AssertionError("no listener process tree under mta -d")


class Processes(smtptest.SmtpCase):
    def test_sessions_run_as_the_spool_owner_and_the_root_side_stays_root(self):
        if not mrtest.IS_ROOT:
            self.skipTest("needs root: the privilege split")
        root_side, sessions = listener_processes(self.box.daemon.pid)
        self.assertEqual(uid_of(root_side), [0, 0, 0, 0])
        self.assertEqual(uid_of(sessions), [smtptest.SPOOL_OWNER_UID] * 4)
        with open(f"/proc/{sessions}/status") as f:
            groups = [line for line in f if line.startswith("Groups:")][0].split()[1:]
        self.assertEqual(groups, [])

    def test_a_killed_listener_is_started_again(self):
        if not mrtest.IS_ROOT:
            self.skipTest("needs root: the privilege split")
        root_side, sessions = listener_processes(self.box.daemon.pid)
        os.kill(sessions, 9)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                new_root, new_sessions = listener_processes(self.box.daemon.pid, timeout=1)
                if new_sessions != sessions:
                    break
            except AssertionError:
                pass
        else:
            self.fail("the listener was not started again")
        smtptest.wait_port(self.box.smtp_port)
        with self.box.smtp() as client:
            client.ehlo()
            client.sendmail("a@example.org", ["bob@test.example"], message("after restart"))
        self.wait_delivered("bob")

    def test_sigterm_stops_daemon_and_listener(self):
        root_side, sessions = listener_processes(self.box.daemon.pid)
        self.box.daemon.send_signal(15)
        self.assertEqual(self.box.daemon.wait(30), 0)
        for pid in (root_side, sessions):
            self.assertFalse(os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z")


class Refusals(unittest.TestCase):
    def test_a_root_owned_spool_stops_the_start(self):
        if not mrtest.IS_ROOT:
            self.skipTest("as another user the sessions run as that user")
        box = smtptest.SmtpBox(submission=False, smtps=False)
        self.addCleanup(box.cleanup)
        os.chown(box.spool, 0, 0)
        result = box.run("mta", ["-d"], timeout=30)
        self.assertEqual(result.returncode, 78, result.stderr)
        self.assertIn(b"will not run its sessions as root", result.stderr)

    def test_submission_without_a_certificate_stops_the_start(self):
        box = smtptest.SmtpBox(tls=False, smtps=False)
        self.addCleanup(box.cleanup)
        result = box.run("mta", ["-d"], timeout=30)
        self.assertEqual(result.returncode, 78, result.stderr)
        self.assertIn(b"need smtpd_tls_cert_file", result.stderr)

    def test_a_port_in_use_stops_the_start(self):
        box = smtptest.SmtpBox(submission=False, smtps=False)
        self.addCleanup(box.cleanup)
        with socket.socket() as taken:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            taken.bind(("127.0.0.1", box.smtp_port))
            taken.listen()
            result = box.run("mta", ["-d"], timeout=30)
        self.assertEqual(result.returncode, 71, result.stderr)
        self.assertIn(b"cannot listen on", result.stderr)


class Relay(smtptest.SmtpCase):
    config = {"mynetworks": "192.0.2.0/24"}

    def test_relay_is_denied_to_a_client_outside_mynetworks(self):
        with self.box.smtp() as client:
            client.ehlo()
            client.mail("a@example.org")
            code, text = client.rcpt("victim@far.example")
            self.assertEqual(code, 554)
            self.assertIn(b"5.7.1 <victim@far.example>: Relay access denied", text)
            code, _ = client.rcpt("bob@test.example")
            self.assertEqual(code, 250)
        self.assertRegex(self.box.log_text(), r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 554 5\.7\.1 "
                                              r"<victim@far\.example>: Relay access denied; from=<a@example\.org> "
                                              r"to=<victim@far\.example> proto=ESMTP helo=<client\.example>")


    @unittest.skipUnless(shutil.which("pflogsumm"), "pflogsumm is not installed (scripts/deps.sh installs it)")
    def test_pflogsumm_counts_smtp_traffic_and_rejects(self):
        from test_queue_log import grand_totals
        with self.box.smtp() as client:
            client.ehlo()
            for n in range(3):
                client.sendmail("a@example.org", ["bob@test.example"], message(f"counted {n}"))
            client.mail("a@example.org")
            client.rcpt("x@far.example")      # relay access denied
            client.rcpt("y@far.example")
            client.rcpt("nosuchuser@test.example")  # unknown user
            client.rset()
        self.wait_delivered("bob", 3)
        self.box.stop()
        dates = ["-d", "today"]
        r = subprocess.run(["pflogsumm", "--syslog-name=mailroom"] + dates + [self.box.log], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        report = r.stdout.decode(errors="replace")
        totals = grand_totals(report)
        self.assertEqual({k: totals.get(k) for k in ("received", "delivered", "rejected")},
                         {"received": 3, "delivered": 3, "rejected": 3}, report)
        self.assertIn("Relay access denied", report)


class RelayAllowed(smtptest.SmtpCase):
    def test_relay_is_allowed_from_mynetworks(self):
        with self.box.smtp() as client:
            client.ehlo()
            client.mail("a@example.org")
            code, _ = client.rcpt("someone@far.example")
            self.assertEqual(code, 250)


if __name__ == "__main__":
    mrtest.main()
