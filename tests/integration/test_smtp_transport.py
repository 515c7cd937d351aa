#!/usr/bin/env python3
"""The runner's SMTP transport (SPEC 7 "Remote delivery", docs/remote-delivery.md
"The SMTP dialogue"): queued mail for remote recipients goes to a smart host played
by Postfix's smtp-sink and by a scripted Python server on loopback (STARTTLS with a
certificate made here by openssl, AUTH checked), or to MX hosts named by the stub
DNS server. Accepted mail is delivered once and logged as Postfix's smtp logs it;
4xx defers and a later run delivers it exactly once; 5xx bounces with Remote-MTA
and Diagnostic-Code in the notice; the MX hosts are tried in order.

Only loopback addresses are ever contacted: every test sets relayhost, or
smtp_dns_servers to the stub."""
import base64
import email
import glob
import os
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import unittest

import mrtest
import queuetest

SMTP_SINK = "/usr/sbin/smtp-sink"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def queue(box, recipients, subject, sender="alice@test.example"):
    result = box.sendmail(["-odq", "-i", "-f", sender] + recipients, mrtest.message(subject=subject))
    if result.returncode != 0:
        raise AssertionError(result.stderr.decode(errors="replace"))


def log_text(box):
    return "\n".join(queuetest.log_lines(box))


def make_certificate(folder, name="relay.test.example"):
    """A self-signed certificate for `name` and 127.0.0.1 (cert.pem, key.pem in folder)."""
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:PORT, each transaction dumped to a file of
    its own in `folder` (-d), run as nobody (-u) when started by root."""

    def __init__(self, folder, port, extra=()):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        os.chmod(folder, 0o777)
        args = [SMTP_SINK]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        args += list(extra) + ["-d", os.path.join(folder, "%M."), f"127.0.0.1:{port}", "100"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.recv(100)
                break
            except OSError:
                if self.process.poll() is not None or time.time() > deadline:
                    raise AssertionError("smtp-sink did not start: " + self.process.stderr.read().decode())
                time.sleep(0.05)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process.stderr.close()

    def dumps(self):
        """The transactions received: (recipients, message) pairs. smtp-sink writes a
        file per transaction; its headers name the envelope (X-Rcpt-Args lines)."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.folder, "*"))):
            with open(path, "rb") as f:
                data = f.read()
            out.append(data)
        return out


class ScriptedServer(socketserver.ThreadingTCPServer):
    """An SMTP server in a thread of the test: EHLO with PIPELINING, STARTTLS (when a
    certificate is given) and AUTH PLAIN LOGIN; replies from `rcpt_replies` (address:
    reply), else 250; every command recorded with whether TLS was on at the time."""
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address, cert=None, key=None, rcpt_replies=None, credentials=("user", "secret"),
                 tls_broken=False):
        super().__init__(address, ScriptedHandler)
        self.cert, self.key = cert, key
        self.tls_broken = tls_broken  # answer STARTTLS 220, then plaintext garbage instead of a handshake
        self.rcpt_replies = rcpt_replies or {}
        self.credentials = credentials
        self.events = []  # (connection number, tls, line)
        self.messages = []  # (sender, recipients, data)
        self.connections = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()

    def commands(self):
        with self.lock:
            return list(self.events)


class ScriptedHandler(socketserver.StreamRequestHandler):
    timeout = 20

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1
            self.number = self.server.connections
        self.tls = False
        self.authenticated = False

    def finish(self):
        super().finish()
        if self.tls:
            self.request.close()

    def send(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def record(self, line):
        with self.server.lock:
            self.server.events.append((self.number, self.tls, line))

    def readline(self):
        line = self.rfile.readline(4096)
        if not line:
            return None
        return line.decode(errors="replace").rstrip("\r\n")

    def handle(self):
        server = self.server
        self.send("220 relay.test.example ESMTP scripted")
        sender, recipients = None, []
        while True:
            line = self.readline()
            if line is None:
                return
            self.record(line)
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                lines = ["relay.test.example", "PIPELINING", "8BITMIME"]
                if server.cert and not self.tls:
                    lines.append("STARTTLS")
                lines.append("AUTH PLAIN LOGIN")
                for i, text in enumerate(lines):
                    self.send(("250 " if i == len(lines) - 1 else "250-") + text)
            elif verb == "STARTTLS" and server.cert and not self.tls:
                self.send("220 2.0.0 Ready to start TLS")
                if server.tls_broken:
                    self.send("this is not a TLS handshake")
                    return
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(server.cert, server.key)
                try:
                    self.request = context.wrap_socket(self.request, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.record(f"#HANDSHAKE FAILED {e}")
                    return
                self.rfile = self.request.makefile("rb")
                self.wfile = self.request.makefile("wb")
                self.tls = True
            elif verb == "AUTH":
                words = line.split()
                if len(words) >= 3 and words[1].upper() == "PLAIN":
                    given = base64.b64decode(words[2]).split(b"\0")
                    ok = given[1:] == [c.encode() for c in server.credentials]
                elif len(words) == 2 and words[1].upper() == "LOGIN":
                    self.send("334 VXNlcm5hbWU6")
                    user = base64.b64decode(self.readline() or "")
                    self.send("334 UGFzc3dvcmQ6")
                    password = base64.b64decode(self.readline() or "")
                    ok = (user.decode(), password.decode()) == server.credentials
                else:
                    ok = False
                self.authenticated = ok
                self.send("235 2.7.0 Authentication successful" if ok else "535 5.7.8 Error: authentication failed")
            elif verb == "MAIL":
                sender, recipients = line[10:].split(">")[0].lstrip("<"), []
                self.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                address = line[8:].split(">")[0].lstrip("<")
                reply = server.rcpt_replies.get(address, "250 2.1.5 Ok")
                if reply.startswith("2"):
                    recipients.append(address)
                self.send(reply)
            elif verb == "DATA":
                if not recipients:
                    self.send("554 5.5.1 Error: no valid recipients")
                    continue
                self.send("354 End data with <CR><LF>.<CR><LF>")
                data = []
                while True:
                    text = self.readline()
                    if text is None:
                        return
                    if text == ".":
                        break
                    data.append(text[1:] if text.startswith(".") else text)
                with server.lock:
                    server.messages.append((sender, list(recipients), "\n".join(data)))
                    n = len(server.messages)
                self.send(f"250 2.0.0 Ok: queued as SCRIPTED{n}")
            elif verb == "RSET":
                sender, recipients = None, []
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Error: command not recognized")


def delivery_status_blocks(notice):
    """The per-recipient blocks of an RFC 3464 report, as dicts of fields (unfolded)."""
    for part in notice.walk():
        if part.get_content_type() == "message/delivery-status":
            return [{k: re.sub(r"\r?\n", "", v) for k, v in block.items()} for block in part.get_payload()[1:]]
    return []


@unittest.skipUnless(os.path.exists(SMTP_SINK), "needs smtp-sink (package postfix)")
class ToSmtpSink(mrtest.TestCase):
    config = {"smtp_tls_security_level": "none"}

    def setUp(self):
        super().setUp()
        self.port = free_port()
        with open(self.box.conf, "a") as conf:
            conf.write(f"relayhost = [127.0.0.1]:{self.port}\n")
        self.sinks = []

    def start_sink(self, *extra):
        sink = SmtpSink(os.path.join(self.box.dir, f"sink{len(self.sinks)}"), self.port, extra)
        self.sinks.append(sink)
        self.addCleanup(sink.stop)
        return sink

    def test_accepted_mail_is_delivered_once_in_one_transaction_and_logged_as_sent(self):
        sink = self.start_sink()
        queue(self.box, ["bob@far.example", "carol@other.example"], "to the relay")
        self.assertExit(self.box.mta(["-q"]), 0)
        dumps = sink.dumps()
        self.assertEqual(len(dumps), 1, log_text(self.box))
        self.assertIn(b"Subject: to the relay", dumps[0])
        self.assertIn(b"bob@far.example", dumps[0])
        self.assertIn(b"carol@other.example", dumps[0])
        self.assertEqual(self.box.queued(), [])
        lines = [l for l in queuetest.log_lines(self.box) if "status=sent" in l]
        self.assertEqual(len(lines), 2, log_text(self.box))
        for line in lines:
            self.assertRegex(line, r"mailroom/smtp\[\d+\]: [0-9A-Za-z]+: to=<\S+>, "
                                   rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{self.port}, delay=[\d.]+, "
                                   r"delays=[\d.]+/0/0/[\d.]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok")

    def test_sendmail_odi_delivers_a_remote_recipient_before_it_exits(self):
        # sendmail has no SMTP client: for a remote recipient it runs `mta -q -I ID`.
        sink = self.start_sink()
        r = self.box.sendmail(["-odi", "-f", "alice", "bob@far.example"], mrtest.message("odi remote"))
        self.assertExit(r, 0)
        self.assertEqual(len(sink.dumps()), 1, log_text(self.box))
        self.assertEqual(self.box.queued(), [])

    def test_a_4xx_defers_and_the_next_run_delivers_exactly_once(self):
        self.start_sink("-r", "RCPT").stop()  # refuses every recipient for now
        self.sinks[-1].process.wait()
        sink = SmtpSink(os.path.join(self.box.dir, "soft"), self.port, ["-r", "RCPT"])
        self.addCleanup(sink.stop)
        queue(self.box, ["bob@far.example"], "soft then ok")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertRegex(log_text(self.box), r"to=<bob@far\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*"
                                             r"dsn=4\.\d\.\d, status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 4")
        self.assertEqual(len(self.box.queued()), 1)
        self.assertEqual(sink.dumps(), [])
        sink.stop()
        good = self.start_sink()
        self.assertExit(self.box.run("mailctl", ["flush"]), 0)
        self.assertEqual(len(good.dumps()), 1, log_text(self.box))
        self.assertEqual(self.box.queued(), [])
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(len(good.dumps()), 1)
        self.assertEqual(log_text(self.box).count("status=sent"), 1)

    def test_a_5xx_bounces_with_remote_mta_and_diagnostic_code_in_the_notice(self):
        self.start_sink("-f", "RCPT")
        queue(self.box, ["bob@far.example"], "hard refusal")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertRegex(log_text(self.box), r"mailroom/smtp\[\d+\]: \S+: to=<bob@far\.example>, relay=127\.0\.0\.1"
                                             r"\[127\.0\.0\.1\]:\d+, .*dsn=5\.\d\.\d, status=bounced \(host "
                                             r"127\.0\.0\.1\[127\.0\.0\.1\] said: 5\d\d ")
        self.assertEqual(self.box.queued(), [])
        notices = queuetest.read_mbox(self.box, "alice")
        self.assertEqual(len(notices), 1, log_text(self.box))
        blocks = delivery_status_blocks(notices[0])
        self.assertEqual(len(blocks), 1)
        self.assertEqual(blocks[0]["Final-Recipient"], "rfc822; bob@far.example")
        self.assertEqual(blocks[0]["Action"], "failed")
        self.assertEqual(blocks[0]["Remote-MTA"], "dns; 127.0.0.1")
        self.assertRegex(blocks[0]["Diagnostic-Code"], r"^smtp; 5\d\d ")
        self.assertNotIn("in reply to", blocks[0]["Diagnostic-Code"])

    def test_no_server_at_the_relayhost_defers_and_says_so(self):
        queue(self.box, ["bob@far.example"], "nobody listens")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertRegex(log_text(self.box), r"mailroom/smtp\[\d+\]: \S+: to=<bob@far\.example>, relay=none, .*"
                                             rf"status=deferred \(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:{self.port}: "
                                             r"Connection refused\)")
        self.assertEqual(len(self.box.queued()), 1)


class ToScriptedServer(mrtest.TestCase):
    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.cert, self.key = make_certificate(self.box.dir)
        with open(self.box.conf, "a") as conf:
            conf.write(f"relayhost = [127.0.0.1]:{self.port}\n")

    def serve(self, **kwargs):
        server = ScriptedServer(("127.0.0.1", self.port), **kwargs)
        self.addCleanup(server.stop)
        return server

    def configure(self, **settings):
        with open(self.box.conf, "a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def password_file(self, user="user", password="secret"):
        path = self.box.write("sasl_passwd", f"[127.0.0.1]:{self.port} {user}:{password}\n")
        os.chmod(path, 0o600)
        return path

    def test_starttls_then_auth_and_the_server_sees_auth_only_after_tls(self):
        server = self.serve(cert=self.cert, key=self.key)
        self.configure(smtp_tls_security_level="may", smtp_sasl_password_file=self.password_file())
        queue(self.box, ["bob@far.example"], "tls and auth")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(len(server.messages), 1, log_text(self.box))
        commands = server.commands()
        verbs = [(tls, line.split(" ")[0].upper()) for _, tls, line in commands]
        self.assertLess(verbs.index((False, "STARTTLS")), verbs.index((True, "AUTH")))
        self.assertNotIn((False, "AUTH"), verbs)
        self.assertNotIn((False, "MAIL"), verbs)
        self.assertEqual(self.box.queued(), [])

    def test_at_encrypt_an_untrusted_certificate_defers_and_the_test_ca_then_delivers(self):
        server = self.serve(cert=self.cert, key=self.key)
        self.configure(smtp_tls_security_level="encrypt")
        queue(self.box, ["bob@far.example"], "must be encrypted")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertRegex(log_text(self.box), r"to=<bob@far\.example>, .*dsn=4\.7\.5, status=deferred \(Cannot start "
                                             r"TLS with host 127\.0\.0\.1\[127\.0\.0\.1\]: server certificate not trusted")
        self.assertEqual(server.messages, [])
        self.assertEqual(len(self.box.queued()), 1)
        self.configure(smtp_tls_ca_file=self.cert)
        self.assertExit(self.box.run("mailctl", ["flush"]), 0)
        self.assertEqual(len(server.messages), 1, log_text(self.box))
        self.assertTrue(all(tls for _, tls, line in server.commands() if line.startswith("MAIL")))
        self.assertEqual(self.box.queued(), [])

    def test_at_encrypt_a_server_without_starttls_defers_4_7_4_and_gets_no_mail(self):
        server = self.serve()  # no certificate: no STARTTLS offered
        self.configure(smtp_tls_security_level="encrypt")
        queue(self.box, ["bob@far.example"], "no tls there")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertRegex(log_text(self.box), r"dsn=4\.7\.4, status=deferred \(TLS is required, but was not offered")
        self.assertEqual([line for _, _, line in server.commands()], ["EHLO test.example", "QUIT"])

    def test_a_refused_recipient_bounces_alone_and_the_others_are_sent_in_the_same_transaction(self):
        server = self.serve(rcpt_replies={"dave@far.example": "550 5.1.1 <dave@far.example>: Recipient address "
                                                              "rejected: User unknown"})
        self.configure(smtp_tls_security_level="none")
        queue(self.box, ["bob@far.example", "dave@far.example", "erin@far.example"], "one refused")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual([m[1] for m in server.messages], [["bob@far.example", "erin@far.example"]])
        log = log_text(self.box)
        self.assertEqual(log.count("status=sent (250 2.0.0 Ok: queued as SCRIPTED1)"), 2, log)
        notices = queuetest.read_mbox(self.box, "alice")
        self.assertEqual(len(notices), 1)
        blocks = delivery_status_blocks(notices[0])
        self.assertEqual([b["Final-Recipient"] for b in blocks], ["rfc822; dave@far.example"])
        self.assertEqual(blocks[0]["Status"], "5.1.1")
        self.assertEqual(blocks[0]["Remote-MTA"], "dns; 127.0.0.1")
        self.assertEqual(blocks[0]["Diagnostic-Code"],
                         "smtp; 550 5.1.1 <dave@far.example>: Recipient address rejected: User unknown")

    def test_one_connection_carries_the_next_messages_reset_between_them(self):
        server = self.serve()
        self.configure(smtp_tls_security_level="none")
        for i in range(3):
            queue(self.box, [f"bob@far{i}.example"], f"m{i}")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(len(server.messages), 3, log_text(self.box))
        self.assertEqual(server.connections, 1)
        self.assertEqual([line for _, _, line in server.commands()].count("RSET"), 2)
        self.assertEqual(self.box.queued(), [])

    def test_at_may_a_failed_handshake_is_followed_by_the_same_host_in_plaintext(self):
        server = self.serve(cert=self.cert, key=self.key, tls_broken=True)
        self.configure(smtp_tls_security_level="may")
        queue(self.box, ["bob@far.example"], "plaintext after a failed handshake")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(len(server.messages), 1, log_text(self.box))
        self.assertEqual(server.connections, 2)
        by_connection = [(n, line) for n, _, line in server.commands()]
        self.assertIn((1, "STARTTLS"), by_connection)
        self.assertNotIn((2, "STARTTLS"), by_connection)
        self.assertEqual(self.box.queued(), [])

    def test_a_bad_password_file_or_relayhost_stops_mta_with_exit_78(self):
        self.configure(smtp_sasl_password_file=os.path.join(self.box.dir, "missing"))
        result = self.box.mta(["-q"])
        self.assertExit(result, 78)
        self.assertIn("smtp_sasl_password_file", result.stderr.decode())
        self.configure(smtp_sasl_password_file="", relayhost="[127.0.0.1")
        result = self.box.mta(["-q"])
        self.assertExit(result, 78)
        self.assertIn("relayhost", result.stderr.decode())
        result = self.box.run("mailctl", ["flush"])
        self.assertExit(result, 78)


def can_listen(address, port):
    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((address, port))
        return True
    except OSError:
        return False


@unittest.skipUnless(mrtest.IS_ROOT, "MX hosts listen on port 25 of 127.0.0.2 and 127.0.0.3: needs root")
class ToMxHosts(mrtest.TestCase):
    """far.example's MX hosts, from the stub DNS server: mx1 (preference 10) on
    127.0.0.2, mx2 (20) on 127.0.0.3, both port 25 as MX delivery uses."""
    config = {"smtp_tls_security_level": "none"}

    def setUp(self):
        super().setUp()
        try:
            import dns_stub
        except ImportError:
            self.skipTest("tests/integration/dns_stub.py is not there")
        for address in ("127.0.0.2", "127.0.0.3"):
            if not can_listen(address, 25):
                self.skipTest(f"port 25 of {address} is taken or cannot be bound")
        zone = {"far.example": {"MX": [[20, "mx2.far.example"], [10, "mx1.far.example"]]},
                "mx1.far.example": {"A": ["127.0.0.2"]},
                "mx2.far.example": {"A": ["127.0.0.3"]}}
        self.dns = dns_stub.DnsStub(zone)
        self.dns.__enter__()
        self.addCleanup(self.dns.__exit__, None, None, None)
        with open(self.box.conf, "a") as conf:
            conf.write(f"smtp_dns_servers = 127.0.0.1:{self.dns.port}\n")

    def serve(self, address):
        server = ScriptedServer((address, 25))
        self.addCleanup(server.stop)
        return server

    def test_the_mx_host_of_lowest_preference_gets_the_mail(self):
        first, second = self.serve("127.0.0.2"), self.serve("127.0.0.3")
        queue(self.box, ["bob@far.example"], "via mx1")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(len(first.messages), 1, log_text(self.box))
        self.assertEqual(second.messages, [])
        self.assertRegex(log_text(self.box), r"to=<bob@far\.example>, relay=mx1\.far\.example\[127\.0\.0\.2\]:25, "
                                             r".*status=sent")

    def test_a_first_mx_refusing_connections_sends_the_mail_through_the_second(self):
        second = self.serve("127.0.0.3")  # nothing listens on 127.0.0.2:25: refused
        queue(self.box, ["bob@far.example", "carol@far.example"], "via mx2")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual([m[1] for m in second.messages], [["bob@far.example", "carol@far.example"]],
                         log_text(self.box))
        self.assertRegex(log_text(self.box), r"to=<bob@far\.example>, relay=mx2\.far\.example\[127\.0\.0\.3\]:25, "
                                             r".*status=sent")
        self.assertEqual(self.box.queued(), [])

    def test_a_first_mx_answering_4xx_in_its_greeting_sends_the_mail_through_the_second(self):
        busy = socket.socket()
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.2", 25))
        busy.listen(4)

        def close():
            # shutdown wakes the thread blocked in accept (close alone would leave
            # the socket listening until it returns).
            try:
                busy.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            busy.close()
        self.addCleanup(close)

        def refuse():
            while True:
                try:
                    conn, _ = busy.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"421 4.3.2 mx1 is busy\r\n")
        threading.Thread(target=refuse, daemon=True).start()
        second = self.serve("127.0.0.3")
        queue(self.box, ["bob@far.example"], "past a busy mx1")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(len(second.messages), 1, log_text(self.box))
        self.assertEqual(self.box.queued(), [])

    def test_no_mx_host_answering_defers_with_the_last_reason(self):
        queue(self.box, ["bob@far.example"], "nobody home")
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertRegex(log_text(self.box), r"to=<bob@far\.example>, relay=none, .*status=deferred \(connect to "
                                             r"mx2\.far\.example\[127\.0\.0\.3\]:25: Connection refused\)")
        self.assertEqual(len(self.box.queued()), 1)


if __name__ == "__main__":
    mrtest.main()
