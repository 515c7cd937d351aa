"""An lmtpd run in a Sandbox: started on a unix socket (and a loopback TCP port),
stopped with SIGTERM at the end of the test, its log kept for failure messages."""
import os
import signal
import socket
import subprocess
import time

import mrtest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LmtpdCase(mrtest.TestCase):
    config = {"mailbox_format": "maildir"}
    tcp = False

    def setUp(self):
        super().setUp()
        self.socket = os.path.join(self.box.dir, "lmtp.sock")
        args = ["-l", f"unix:{self.socket}"]
        if self.tcp:
            self.port = free_port()
            args += ["-l", f"inet:127.0.0.1:{self.port}"]
        self.lmtpd = self.box.popen("lmtpd", args)
        self.addCleanup(self.stop_lmtpd)
        deadline = time.time() + 10
        while not os.path.exists(self.socket):
            if self.lmtpd.poll() is not None or time.time() > deadline:
                self.fail("lmtpd did not start: " + self.lmtpd.stderr.read().decode(errors="replace"))
            time.sleep(0.02)

    def stop_lmtpd(self):
        if self.lmtpd.poll() is None:
            self.lmtpd.send_signal(signal.SIGTERM)
            try:
                self.lmtpd.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.lmtpd.kill()
                self.lmtpd.wait()
        self.lmtpd.stdout.close()
        self.lmtpd.stderr.close()

    def log(self):
        try:
            with open(self.box.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def maildir_messages(self, user):
        """The messages in a user's Maildir (mail_spool_dir/USER/), as Python's mailbox reads them."""
        path = os.path.join(self.box.mail, user)
        if not os.path.isdir(path):
            return []
        return list(self.box.maildir(path))

    def raw(self, data: bytes, tcp=False, read_until_close=True, timeout=20):
        """Sends bytes as they are and returns everything the server answered."""
        if tcp:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        else:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(timeout)
            s.connect(self.socket)
        with s:
            s.sendall(data)
            answer = b""
            while read_until_close:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                answer += chunk
            return answer
