"""Probes for hostile-client tests of the SMTP listener (and any server speaking
SMTP or LMTP): a client that reads reply by reply over a socket it is given, the
reply parsing, the SMTP smuggling probes, and what a test reads of the server's
processes (their tree from a pid, resident memory from /proc).

test_lmtpd_hostile.py has its own copies of the first of these (written before
this module); the SMTP listener's tests (test_smtpd_hostile.py,
test_smtpd_access.py) use these.
"""
import mailbox
import os
import re
import socket
import ssl
import time

import mrtest
import smtptest

ENHANCED = re.compile(rb"^[245]\d\d [245]\.\d{1,3}\.\d{1,3} ")
GREETED = b"EHLO client.example\r\n"
ENVELOPE = b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@test.example>\r\n"


def text(subject: bytes, body: bytes = b"hello\r\n") -> bytes:
    """A small message with a Subject that finds it again."""
    return b"From: s@example.org\r\nSubject: " + subject + b"\r\n\r\n" + body


# --- replies ---


def final_lines(answer: bytes):
    """The last line of every reply in a server's answer ("250-..." lines skipped)."""
    return [line for line in answer.split(b"\r\n") if line[3:4] == b" "]


def codes(answer: bytes):
    return [line[:3].decode(errors="replace") for line in final_lines(answer)]


class Client:
    """One connection read reply by reply. `sock` is connected (plain or TLS)."""

    def __init__(self, sock, timeout=10):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buffer = b""
        self.transcript = b""

    @classmethod
    def tcp(cls, port, timeout=10, host="127.0.0.1"):
        return cls(socket.create_connection((host, port), timeout=timeout), timeout)

    def send(self, data: bytes):
        self.sock.sendall(data)

    def reply(self):
        """The next whole reply: (code, its lines joined by CRLF); (None, what came) at EOF."""
        while True:
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
                    try:
                        return int(line[:3]), whole
                    except ValueError:
                        return -1, whole
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
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
        data, self.buffer = self.buffer, b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                break
            data += chunk
        self.transcript += data
        return data

    def starttls(self, context, server_hostname="test.example"):
        """STARTTLS already answered 220: the handshake, then the same Client over TLS."""
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def read_until_close_or_quiet(sock, quiet=5.0, limit=None):
    """All a socket gives until EOF, `quiet` seconds without a byte, or `limit` seconds in all."""
    sock.settimeout(quiet)
    data = b""
    started = time.time()
    while limit is None or time.time() - started < limit:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def client_hello(server_hostname="test.example"):
    """The bytes of a real TLS ClientHello, as Python's ssl would send them first."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


# --- SMTP smuggling (SEC Consult, December 2023) ---

# The end-of-data sequences SEC Consult's scanner tries (inbound and outbound lists),
# with the two the brief adds (<CRLF>.<LF>, <CRLF>.<CR>): anything but <CRLF>.<CRLF>
# that some server took for the end of the data.
SMUGGLE_PROBES = [
    b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r",
    b"\n.\r", b"\r.\n", b"\r\n.\r\r\n", b"\r\r\n.\r\r\n",
    b"\r\n\x00.\r\n",
]


def has_bare_newline(data: bytes) -> bool:
    """A CR not followed by LF or a LF not after CR."""
    return re.search(rb"\r(?!\n)|(?<!\r)\n", data) is not None


# --- a receiving server that records the bytes ---


class RawSink:
    """A minimal SMTP server on a free loopback port (no CHUNKING, no STARTTLS, so a
    relaying client must use DATA and dot-stuff): every command line and every
    DATA's raw bytes up to the <CRLF>.<CRLF> are kept, as they came on the wire."""

    def __init__(self):
        import socketserver
        import threading
        sink = self
        self.lock = threading.Lock()
        self.commands = []  # every line the client sent outside DATA, bytes
        self.messages = []  # (MAIL line, [RCPT lines], raw DATA bytes before <CRLF>.<CRLF>)

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 sink.example ESMTP\r\n")
                mail, rcpts = None, []
                while True:
                    line = self.rfile.readline(65536)
                    if not line:
                        return
                    with sink.lock:
                        sink.commands.append(line)
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        self.wfile.write(b"250-sink.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    elif verb == b"MAIL":
                        mail, rcpts = line, []
                        self.wfile.write(b"250 2.1.0 Ok\r\n")
                    elif verb == b"RCPT":
                        rcpts.append(line)
                        self.wfile.write(b"250 2.1.5 Ok\r\n")
                    elif verb == b"DATA":
                        self.wfile.write(b"354 go on\r\n")
                        data = b"\r\n"
                        while not data.endswith(b"\r\n.\r\n"):
                            chunk = self.rfile.readline(65536)
                            if not chunk:
                                return
                            data += chunk
                        with sink.lock:
                            sink.messages.append((mail, rcpts, data[2:-3]))
                        self.wfile.write(b"250 2.0.0 Ok: queued in the sink\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 2.0.0 Bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 2.0.0 Ok\r\n")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def unstuff(data: bytes) -> bytes:
        """The text a receiver keeps: a leading dot of each line removed."""
        return re.sub(rb"(?m)^\.", b"", data)


# --- processes ---


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def process_table():
    """{pid: parent pid} of every process now."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            parents[int(name)] = parent_of(name)
        except (OSError, ValueError, IndexError):
            continue
    return parents


def children(pid, table=None):
    table = process_table() if table is None else table
    return sorted(child for child, parent in table.items() if parent == pid)


def descendants(pid):
    """`pid` and every process under it."""
    table = process_table()
    found = [pid]
    for p in found:
        found.extend(c for c in children(p, table) if c not in found)
    return found


def uids(pid):
    """Real, effective, saved and file-system uid of a process; [] once it is gone (a
    process listed a moment ago may have exited: a listener's old root side)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []


def rss_kb(pid, field="VmRSS"):
    """A process's resident memory now (VmRSS) or at its peak so far (VmHWM), in kB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


# --- the fixture ---

class ProbeCase(smtptest.SmtpCase):
    """A box with `mta -d` listening (started after prepare(), which a test class may
    use to write files the configuration names); helpers to talk to it and to see
    what it did."""

    def prepare(self):
        pass

    def setUp(self):
        self.box = smtptest.SmtpBox(**self.box_options, **self.config)
        self.addCleanup(self.box.cleanup)
        self.prepare()
        self.box.start()
        # wait_port's probe session has come and gone: the sessions process runs.
        self.wait_for_log("disconnect from", 1)
        self.root_side, self.sessions = self.listener()
        self.baseline_rss = rss_kb(self.sessions)
        self.passwd_stat = os.stat("/etc/passwd")
        self.files_before = self.sandbox_files()

    # --- the listener's processes ---

    def listener(self, timeout=10.0):
        """(root side, sessions process): the child of mta -d whose child runs as the
        spool owner (docs/security.md), found by the parent chain."""
        owner = smtptest.SPOOL_OWNER_UID if mrtest.IS_ROOT else os.getuid()
        deadline = time.time() + timeout
        while True:
            table = process_table()
            for child in children(self.box.daemon.pid, table):
                for grandchild in children(child, table):
                    try:
                        if uids(grandchild)[0] == owner and uids(child)[0] == os.getuid():
                            return child, grandchild
                    except (OSError, IndexError):
                        continue
            if time.time() > deadline:
                self.fail("no listener (root side and sessions process) under mta -d" + self.why())
            time.sleep(0.05)

    def assertListenerUp(self, what):
        self.assertIsNone(self.box.daemon.poll(), f"mta -d ended ({what})" + self.why())
        self.assertEqual(self.listener(timeout=3), (self.root_side, self.sessions),
                         f"the listener is not the one that started: it died and was started again ({what})"
                         + self.why())

    def rss(self, field="VmRSS"):
        return rss_kb(self.sessions, field)

    # --- talking ---

    def client(self, port=None, timeout=10):
        c = Client.tcp(port or self.box.smtp_port, timeout)
        self.addCleanup(c.close)
        return c

    def greeted(self, port=None, timeout=10):
        c = self.client(port, timeout)
        self.assertEqual(c.reply()[0], 220, self.why(c.transcript))
        self.assertEqual(c.cmd(b"EHLO client.example")[0], 250, self.why(c.transcript))
        return c

    def raw(self, data: bytes, port=None, timeout=20):
        """Sends bytes as they are, in one write, and returns all the server says until it closes."""
        with socket.create_connection(("127.0.0.1", port or self.box.smtp_port), timeout=timeout) as s:
            s.sendall(data)
            return read_until_close_or_quiet(s, quiet=timeout)

    def good_transaction(self, c, subject: bytes, stage="greeted", rcpt=b"alice@test.example"):
        """Goes on from `stage` with a message that must be queued; its queue ID."""
        if stage == "fresh":
            self.assertEqual(c.cmd(b"EHLO client.example")[0], 250, self.why(c.transcript))
        if stage in ("fresh", "greeted"):
            self.assertEqual(c.cmd(b"MAIL FROM:<s@example.org>")[0], 250, self.why(c.transcript))
        if stage != "rcpt":
            self.assertEqual(c.cmd(b"RCPT TO:<" + rcpt + b">")[0], 250, self.why(c.transcript))
        self.assertEqual(c.cmd(b"DATA")[0], 354, self.why(c.transcript))
        code, line = c.cmd(text(subject) + b".")
        self.assertEqual(code, 250, "the good transaction" + self.why(c.transcript))
        found = re.search(rb"250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)", line)
        self.assertIsNotNone(found, self.why(c.transcript))
        return found.group(1).decode()

    # --- what the server did ---

    def log(self):
        return self.box.log_text()

    def why(self, answer=b""):
        if isinstance(answer, bytes):
            answer = answer.decode(errors="replace")
        log = self.log().splitlines()
        if len(log) > 40:
            log = [f"[{len(log) - 40} lines before]"] + log[-40:]
        if len(answer) > 3000:
            answer = answer[:1500] + f"\n[... {len(answer) - 3000} characters ...]\n" + answer[-1500:]
        return f"\n--- server answered:\n{answer}\n--- log (end):\n" + "\n".join(log)

    def wait_for_log(self, needle, count=1, timeout=10):
        """Waits until `needle` (a str, or a compiled regex) is in the log `count` times."""
        deadline = time.time() + timeout
        while True:
            log = self.log()
            found = len(needle.findall(log)) if isinstance(needle, re.Pattern) else log.count(needle)
            if found >= count:
                return found
            if time.time() > deadline:
                self.fail(f"the log never had {count} x {needle!r} (only {found})" + self.why())
            time.sleep(0.05)

    def sandbox_files(self):
        found = set()
        for root, dirs, files in os.walk(self.box.dir):
            for name in dirs + files:
                found.add(os.path.relpath(os.path.join(root, name), self.box.dir))
        return found

    def assertNothingWrittenBut(self, *users, answer=b""):
        """No file appeared in the sandbox but the log, the spool's own and the named
        users' mailboxes, and /etc/passwd is untouched."""
        new = self.sandbox_files() - self.files_before
        allowed = ("mailroom.log", "spool") + tuple(os.path.join("mail", u) for u in users)
        stray = sorted(p for p in new if not any(p == a or p.startswith(a + os.sep) for a in allowed))
        self.assertEqual(stray, [], "files written that must not be" + self.why(answer))
        after = os.stat("/etc/passwd")
        self.assertEqual((after.st_ino, after.st_size, after.st_mtime_ns),
                         (self.passwd_stat.st_ino, self.passwd_stat.st_size, self.passwd_stat.st_mtime_ns),
                         "/etc/passwd changed" + self.why(answer))

    def mails(self, user):
        """The raw bytes of each message in a user's mbox, as Python's mailbox splits it."""
        path = self.box.mbox_path(user)
        if not os.path.exists(path):
            return []
        box = mailbox.mbox(path, create=False)
        try:
            return [box.get_bytes(key) for key in box.keys()]
        finally:
            box.close()

    def mailq(self):
        result = self.box.run("mailq", [])
        self.assertEqual(result.returncode, 0, result.stderr.decode(errors="replace"))
        return result.stdout.decode(errors="replace")

    def assertQueueEmpty(self, what, answer=b""):
        self.assertEqual(self.box.queued("tmp"), [], f"{what}: left in the spool's tmp/" + self.why(answer))
        self.assertEqual(self.box.queued("queue"), [], f"{what}: queued" + self.why(answer))
        self.assertIn("Mail queue is empty", self.mailq(), what + self.why(answer))

    def settle(self, user, count, timeout=60):
        """Waits until `user` has `count` messages and the queue is empty (so that no
        more can come); returns the messages."""
        deadline = time.time() + timeout
        while True:
            found = self.mails(user)
            if len(found) >= count and not self.box.queued("queue") and not self.box.queued("tmp"):
                return found
            if time.time() > deadline:
                self.fail(f"{user} has {len(found)} messages, not {count}; queue/: {self.box.queued('queue')}, "
                          f"tmp/: {self.box.queued('tmp')}" + self.why())
            time.sleep(0.1)
