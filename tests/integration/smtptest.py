"""Fixture for the SMTP listener's tests: a Sandbox whose spool belongs to an
unprivileged account (the sessions process runs as it, docs/security.md), a TLS
certificate made for the test, PAM played by pam_wrapper + pam_matrix (users and
passwords from a file of the test's, no real account), and `mta -d` listening on
free loopback ports: smtpd (25-style), submission (587) and smtps (465).
"""
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import mrtest

PAM_WRAPPER = "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so"
PAM_MATRIX = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so"
SPOOL_OWNER_UID = 20900
PASSWORDS = {"alice": "alice-secret", "bob": "b0b pass word!"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificate(folder, name="test.example"):
    """A self-signed certificate and key for `name` and 127.0.0.1; their paths."""
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1"],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def wait_port(port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(512)
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


class SmtpBox(mrtest.Sandbox):
    """A Sandbox with SMTP listeners; start() runs `mta -d`, stop() ends it."""

    def __init__(self, tls=True, submission=True, smtps=True, **config):
        self.smtp_port, self.submission_port, self.smtps_port = free_port(), free_port(), free_port()
        listen = {"smtpd_listen": f"127.0.0.1:{self.smtp_port}"}
        if submission:
            listen["submission_listen"] = f"127.0.0.1:{self.submission_port}"
        if smtps:
            listen["smtps_listen"] = f"127.0.0.1:{self.smtps_port}"
        listen.update(config)
        super().__init__(**listen)
        if mrtest.IS_ROOT:
            with open(self.passwd, "a") as f:
                f.write(f"mailroom:x:{SPOOL_OWNER_UID}:{SPOOL_OWNER_UID}:mailroom:/nonexistent:/usr/sbin/nologin\n")
            with open(self.group, "a") as f:
                f.write(f"mailroom:x:{SPOOL_OWNER_UID}:\n")
            os.mkdir(self.spool, 0o755)
            os.chown(self.spool, SPOOL_OWNER_UID, SPOOL_OWNER_UID)
        self.cert = self.key = None
        if tls:
            self.cert, self.key = make_certificate(self.dir)
            with open(self.conf, "a") as f:
                f.write(f"smtpd_tls_cert_file = {self.cert}\nsmtpd_tls_key_file = {self.key}\n")
        self.pam_dir = os.path.join(self.dir, "pam.d")
        os.mkdir(self.pam_dir)
        self.passdb = self.write("passdb", "".join(f"{u}:{p}:smtp\n" for u, p in PASSWORDS.items()))
        with open(os.path.join(self.pam_dir, "smtp"), "w") as f:
            for kind in ("auth", "account"):
                f.write(f"{kind} required {PAM_MATRIX} passdb={self.passdb}\n")
        self.daemon = None

    def add_config(self, **settings):
        """Appends `key = value` lines to the box's mailroom.conf (before start())."""
        with open(self.conf, "a") as f:
            f.write("".join(f"{k} = {v}\n" for k, v in settings.items()))

    def env(self, **extra):
        env = super().env(**extra)
        if os.path.exists(PAM_WRAPPER):
            env["LD_PRELOAD"] = PAM_WRAPPER + " " + env["LD_PRELOAD"]
            env.update({"PAM_WRAPPER": "1", "PAM_WRAPPER_SERVICE_DIR": self.pam_dir})
        return env

    def start(self):
        self.daemon = self.popen("mta", ["-d"])
        try:
            wait_port(self.smtp_port)
        except AssertionError:
            self.daemon.kill()
            out, err = self.daemon.communicate()
            raise AssertionError(f"mta -d did not listen: {err.decode(errors='replace')}")

    def stop(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        if self.daemon:
            self.daemon.stdout.close()
            self.daemon.stderr.close()

    def cleanup(self):
        self.stop()
        super().cleanup()

    def client_context(self):
        """A client TLS context that trusts the box's certificate."""
        context = ssl.create_default_context(cafile=self.cert)
        return context

    def smtp(self, port=None, **kwargs):
        return smtplib.SMTP("127.0.0.1", port or self.smtp_port, local_hostname="client.example", timeout=30, **kwargs)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


def skip_unless_pam(test):
    if not os.path.exists(PAM_WRAPPER) or not os.path.exists(PAM_MATRIX):
        test.skipTest("pam_wrapper/pam_matrix not installed (libpam-wrapper)")


class SmtpCase(mrtest.TestCase):
    box_options = {}

    def setUp(self):
        self.box = SmtpBox(**self.box_options, **self.config)
        self.addCleanup(self.box.cleanup)
        self.box.start()

    def wait_delivered(self, user, count=1, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            path = self.box.mbox_path(user)
            if os.path.exists(path):
                box = self.box.mbox(user)
                if len(box) >= count:
                    return box
            time.sleep(0.1)
        self.fail(f"{user} did not get {count} message(s); log:\n{self.box.log_text()[-3000:]}")
