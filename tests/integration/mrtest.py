"""Shared fixture for mailroom's integration tests.

A Sandbox is a temporary folder with a mail spool, a configuration file and
fake users from nss_wrapper, so no test touches the machine's accounts or
/var/mail. As root the users have their own uids and mda really switches to
them. As another user, they all share the caller's uid and uid_wrapper makes
mda believe it runs as root, so its privileged path (a child per user, the
verified irrevocable switch) still runs.

main() runs a script's tests and exits as ctest reads it (SKIP_RETURN_CODE 77 in
CMakeLists.txt): 1 when any test failed, 77 when none failed but any was skipped,
0 only when every test ran and passed. A script with some tests skipped is thus
shown as skipped as a whole, although its other tests ran: a skip must never read
as a pass, and `make check` counts it. The skipped tests and their reasons are
listed at the end of the output, so one can see which checks did not run.
A script in which no test ran exits 5, as unittest does from Python 3.12 on.
"""
import mailbox
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("MAILROOM_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "bin")
NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"
UID_WRAPPER = "/usr/lib/x86_64-linux-gnu/libuid_wrapper.so"
IS_ROOT = os.geteuid() == 0
USERS = ["alice", "bob", "carol", "dave", "postmaster"]
FIRST_UID = 20001


def mboxrd_unescape(data: bytes) -> bytes:
    """Undo mboxrd quoting: one '>' off every line matching ^>+From ."""
    return re.sub(rb"(?m)^>(>*From )", rb"\1", data)


class Sandbox:
    def __init__(self, **config):
        self.dir = tempfile.mkdtemp(prefix="mailroom-test-")
        os.chmod(self.dir, 0o755)
        self.mail = os.path.join(self.dir, "mail")
        os.mkdir(self.mail)
        # World-writable and sticky, like a classic /var/mail: users create their own mailbox.
        os.chmod(self.mail, 0o1777)
        self.home = os.path.join(self.dir, "home")
        os.mkdir(self.home)
        self.log = os.path.join(self.dir, "mailroom.log")
        self.uids = {}
        self.opened = []
        passwd, group = [], []
        for i, name in enumerate(USERS):
            uid = FIRST_UID + i if IS_ROOT else os.getuid()
            gid = FIRST_UID + i if IS_ROOT else os.getgid()
            home = os.path.join(self.home, name)
            os.mkdir(home)
            if IS_ROOT:
                os.chown(home, uid, gid)
            self.uids[name] = uid
            passwd.append(f"{name}:x:{uid}:{gid}:{name.title()} Test:{home}:/bin/sh")
            group.append(f"{name}:x:{gid}:")
        passwd.append(f"root:x:0:0:root:/root:/bin/sh")
        group.append("root:x:0:")
        # default_privs: commands and files of a root-owned aliases database run as it.
        passwd.append("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin")
        group.append("nogroup:x:65534:")
        # A supplementary group numbered below the users' own, as on real systems
        # ("users", 100): the kernel sorts the group list a delivery switches to.
        group.append(f"users:x:100:{','.join(USERS)}")
        self.passwd = self.write("passwd", "\n".join(passwd) + "\n")
        self.group = self.write("group", "\n".join(group) + "\n")
        self.spool = os.path.join(self.dir, "spool")
        self.aliases = os.path.join(self.dir, "aliases")
        settings = {
            "myhostname": "test.example",
            "spool_dir": self.spool,
            "mail_spool_dir": self.mail,
            "log": self.log,
            "lock_timeout": "10s",
            # Never the machine's /etc/aliases: a test writes its own (self.aliases).
            "aliases": os.path.join(self.dir, "aliases"),
            # Never the machine's DNS servers or another host: remote recipients are
            # looked up at a loopback port where nothing answers (a prompt temporary
            # failure, so they are deferred); a test of remote delivery sets its own
            # smtp_dns_servers (a stub) or relayhost, which the later line overrides.
            "smtp_dns_servers": "127.0.0.1:1",
        }
        settings.update(config)
        self.conf = self.write("mailroom.conf",
                               "".join(f"{k} = {v}\n" for k, v in settings.items()))

    def write(self, name, text, mode="w"):
        path = os.path.join(self.dir, name)
        with open(path, mode) as f:
            f.write(text)
        return path

    def env(self, **extra):
        env = dict(os.environ)
        env.update({
            "LD_PRELOAD": NSS_WRAPPER,
            "NSS_WRAPPER_PASSWD": self.passwd,
            "NSS_WRAPPER_GROUP": self.group,
            "MAILROOM_CONF": self.conf,
            "TMPDIR": self.dir,
        })
        if not IS_ROOT:
            env.update({"LD_PRELOAD": f"{UID_WRAPPER} {NSS_WRAPPER}",
                        "UID_WRAPPER": "1", "UID_WRAPPER_ROOT": "1"})
        env.update(extra)
        return env

    def mda(self, args, message, **kwargs):
        """Runs the built mda; returns the CompletedProcess (stdout/stderr as bytes)."""
        if isinstance(message, str):
            message = message.encode()
        return subprocess.run([os.path.join(BIN, "mda")] + list(args), input=message,
                              capture_output=True, env=self.env(), timeout=kwargs.get("timeout", 120))

    def run(self, program, args, message=None, **kwargs):
        """Runs a built program (sendmail, mta, mailq, mailctl) with the sandbox's
        configuration and users; returns the CompletedProcess (bytes)."""
        if isinstance(message, str):
            message = message.encode()
        return subprocess.run([os.path.join(BIN, program)] + list(args),
                              input=message if message is not None else b"",
                              capture_output=True, env=self.env(**kwargs.get("env", {})),
                              timeout=kwargs.get("timeout", 120))

    def sendmail(self, args, message, **kwargs):
        return self.run("sendmail", args, message, **kwargs)

    def mta(self, args, **kwargs):
        return self.run("mta", args, **kwargs)

    def popen(self, program, args, **kwargs):
        """Starts a built program in the background (e.g. mta -d); the caller ends it."""
        return subprocess.Popen([os.path.join(BIN, program)] + list(args), env=self.env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **kwargs)

    def queued(self, folder="queue"):
        """Queue IDs in a spool folder (queue, hold, quarantine, tmp)."""
        path = os.path.join(self.spool, folder)
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def popen_mda(self, args, **kwargs):
        return subprocess.Popen([os.path.join(BIN, "mda")] + list(args), env=self.env(),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, **kwargs)

    def mbox_path(self, user):
        return os.path.join(self.mail, user)

    def mbox(self, user):
        box = mailbox.mbox(self.mbox_path(user), create=False)
        self.opened.append(box)
        return box

    def maildir(self, path):
        return mailbox.Maildir(path, factory=None, create=False)

    def cleanup(self):
        for box in self.opened:
            box.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class TestCase(unittest.TestCase):
    config = {}

    def setUp(self):
        self.box = Sandbox(**self.config)
        self.addCleanup(self.box.cleanup)

    def assertExit(self, result, code, stderr_re=None):
        self.assertEqual(result.returncode, code,
                         f"exit {result.returncode}, stderr: {result.stderr.decode(errors='replace')}")
        if stderr_re:
            self.assertRegex(result.stderr.decode(errors="replace"), stderr_re)


def message(subject="test", body="hello\n", extra_headers=""):
    return f"From: sender@example.org\nTo: rcpt@test.example\nSubject: {subject}\n{extra_headers}\n{body}"


SKIPPED_EXIT = 77  # ctest's SKIP_RETURN_CODE for the integration tests
NOTHING_RAN_EXIT = 5  # unittest's own code for it since Python 3.12


def exit_code(result: unittest.TestResult) -> int:
    """What a script whose run gave `result` exits with (see the module docstring)."""
    if not result.wasSuccessful():
        return 1
    if result.testsRun == 0:
        return NOTHING_RAN_EXIT
    if result.skipped:
        return SKIPPED_EXIT
    return 0


def main():
    program = unittest.main(verbosity=2, exit=False)
    result = program.result
    code = exit_code(result)
    if result.skipped:
        print(f"\n{len(result.skipped)} of {result.testsRun} tests SKIPPED (did not check anything):",
              file=sys.stderr)
        for test, reason in result.skipped:
            print(f"  skipped: {test.id()}: {reason}", file=sys.stderr)
    if code == NOTHING_RAN_EXIT:
        print("no test ran", file=sys.stderr)
    sys.exit(code)
