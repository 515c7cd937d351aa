#!/usr/bin/env python3
"""Unprivileged submission (SPEC sections 1 and 3, docs/spool.md, docs/security.md,
docs/sendmail.md): with sendmail set-uid to the spool's owner (never root), any user
can queue mail; the entry belongs to the spool owner with mode 0600 in a 0700 folder,
so the submitter can neither read nor change it, nor anyone else's; mailctl check
finds the spool sound, and finds a queue file with the wrong owner or mode.

A set-uid program reads only the installed configuration: -C and MAILROOM_CONF are
refused with exit 77 before any file is opened, and what it starts gets that
configuration and PATH=/usr/bin:/bin as its whole environment. So a user cannot
append log lines to another user's entry, bounce the queue, sweep another spool's
held entries through a tmp symlink, or learn whether a file exists.

Root only: it installs set-uid copies of the programs and runs them as other uids
with setpriv. The loader ignores LD_PRELOAD in a set-uid program, so nss_wrapper's
users are unknown there: the submitter is recorded by uid, as for a uid without a
passwd entry. The installed configuration (MAILROOM_SYSCONFDIR/mailroom.conf) is
put in place inside a private mount namespace (unshare -m, mount --bind), never
written on the machine."""
import os
import re
import shutil
import stat
import subprocess
import time
import unittest

import mrtest
from mrtest import message

SPOOL_OWNER = 20002  # bob in the sandbox
SUBMITTER = 20001    # alice
OTHER_USER = 20003   # carol
PROGRAMS = ("sendmail", "mta", "mailq", "mailctl", "mda")
# What sibling_exec gives a program started by a set-id sendmail.
SET_ID_PATH = "/usr/bin:/bin"


def sysconfdir():
    """MAILROOM_SYSCONFDIR of the build: from CMake (tests/integration/CMakeLists.txt),
    else from the CMake cache beside the programs."""
    if os.environ.get("MAILROOM_SYSCONFDIR"):
        return os.environ["MAILROOM_SYSCONFDIR"]
    cache = os.path.join(mrtest.BIN, "..", "CMakeCache.txt")
    try:
        with open(cache) as f:
            m = re.search(r"^CMAKE_INSTALL_PREFIX:PATH=(.*)$", f.read(), re.M)
    except OSError:
        return None
    return os.path.join(m.group(1), "etc", "mailroom") if m else None


def can_bind_mount():
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    r = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind / /mnt"], capture_output=True)
    return r.returncode == 0


@unittest.skipUnless(mrtest.IS_ROOT, "needs root to install set-uid programs and switch uids")
class SetuidBase(mrtest.TestCase):
    def setUp(self):
        super().setUp()
        if shutil.which("setpriv") is None:
            self.skipTest("setpriv (util-linux) is missing")
        os.chmod(self.box.dir, 0o755)
        os.mkdir(self.box.spool, 0o755)
        os.chown(self.box.spool, SPOOL_OWNER, SPOOL_OWNER)
        # The set-uid copies: files the users can run but not change.
        self.bin = os.path.join(self.box.dir, "sbin")
        os.mkdir(self.bin, 0o755)
        for program in PROGRAMS:
            path = os.path.join(self.bin, program)
            shutil.copy(os.path.join(mrtest.BIN, program), path)
            os.chown(path, SPOOL_OWNER, SPOOL_OWNER)
            os.chmod(path, 0o4755)
        self.sendmail = os.path.join(self.bin, "sendmail")
        os.chmod(self.box.conf, 0o644)

    def setuid(self, program):
        return os.path.join(self.bin, program)

    def as_user(self, uid, argv, data=b"", env=None):
        """Runs argv as uid (real and effective), groups cleared."""
        environment = {"PATH": "/usr/bin:/bin"}
        environment.update(env or {})
        return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"] + argv,
                              input=data.encode() if isinstance(data, str) else data,
                              capture_output=True, env=environment, timeout=60)

    def installed(self, uid, argv, data=b"", env=None, conf=None):
        """Runs argv as uid with `conf` (default: the sandbox's) as the installed
        configuration, MAILROOM_SYSCONFDIR/mailroom.conf, in a private mount namespace."""
        etc = sysconfdir()
        if etc is None:
            self.skipTest("MAILROOM_SYSCONFDIR of the build is unknown (no CMakeCache.txt beside MAILROOM_BIN)")
        if not can_bind_mount():
            self.skipTest("cannot bind-mount in a private mount namespace (unshare -m)")
        target = etc
        while not os.path.isdir(target):
            target = os.path.dirname(target)
        root = os.path.join(self.box.dir, "etc-root")
        conf_dir = os.path.join(root, os.path.relpath(etc, target))
        os.makedirs(conf_dir, 0o755, exist_ok=True)
        os.chmod(root, 0o755)
        with open(self.box.conf) as f:
            text = f.read() if conf is None else conf
        with open(os.path.join(conf_dir, "mailroom.conf"), "w") as f:
            f.write(text)
        os.chmod(os.path.join(conf_dir, "mailroom.conf"), 0o644)
        script = 'mount --bind "$1" "$2" || exit 121; shift 2; exec "$@"'
        environment = {"PATH": "/usr/bin:/bin"}
        environment.update(env or {})
        r = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", root, target,
                            "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"] + argv,
                           input=data.encode() if isinstance(data, str) else data,
                           capture_output=True, env=environment, timeout=60)
        if r.returncode == 121:
            self.skipTest("mount --bind failed: " + r.stderr.decode(errors="replace"))
        return r

    def spool_snapshot(self):
        """Every file of the spool's folders with its bytes and mtime."""
        snapshot = {}
        for folder in ("tmp", "queue", "hold", "quarantine"):
            for name in self.box.queued(folder):
                path = os.path.join(self.box.spool, folder, name)
                with open(path, "rb") as f:
                    snapshot[(folder, name)] = (f.read(), os.stat(path).st_mtime)
        return snapshot

    def queue_as_root(self, rcpt, subject):
        """An entry submitted by root, as another user's mail would be; its ID."""
        before = set(self.box.queued())
        self.assertExit(self.box.sendmail(["-odq", rcpt], message(subject)), 0)
        (queue_id,) = set(self.box.queued()) - before
        return queue_id

    def assertRefused(self, r, program, how):
        """Exit 77 and exactly one line `PROGRAM: error: will not read ... given by HOW (...)`."""
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 77, err)
        self.assertRegex(err, rf"\A{program}: error: will not read .* given by {how} "
                              rf"\(a program running set-id reads only .*/mailroom\.conf\)\n\Z")


class SetuidSubmission(SetuidBase):
    def test_any_user_queues_with_the_installed_configuration_and_the_entry_belongs_to_the_spool_owner(self):
        r = self.installed(SUBMITTER, [self.sendmail, "-odq", "carol"], message("private"))
        self.assertEqual(r.returncode, 0, r.stderr)
        (queue_id,) = self.box.queued()
        path = os.path.join(self.box.spool, "queue", queue_id)
        st = os.stat(path)
        self.assertEqual(st.st_uid, SPOOL_OWNER)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        for folder in ("tmp", "queue", "hold", "quarantine"):
            st = os.stat(os.path.join(self.box.spool, folder))
            self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (SPOOL_OWNER, 0o700), folder)
        # The submitter is recorded from the real uid, which the set-uid bit does not change.
        with open(path, "rb") as f:
            self.assertIn(f"\nuid {SUBMITTER}\n".encode(), f.read())

        # Neither the submitter nor another user can read or change it.
        for uid in (SUBMITTER, OTHER_USER):
            for probe in (["cat", path], ["sh", "-c", f"echo x >> {path}"], ["ls", os.path.dirname(path)]):
                r = self.as_user(uid, probe)
                self.assertNotEqual(r.returncode, 0, f"uid {uid} could run {probe}")

        # Root's runner delivers it to carol as usual.
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertIn("private", self.box.mbox("carol")[0]["Subject"])
        self.assertEqual(self.box.queued(), [])

    def test_naming_the_installed_file_itself_is_no_choice_and_is_allowed(self):
        installed = os.path.join(sysconfdir() or "/nonexistent", "mailroom.conf")
        r = self.installed(SUBMITTER, [self.sendmail, "-odq", "-C", installed, "carol"], message("named"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.box.queued()), 1)

    def test_mailctl_check_finds_the_spool_sound_then_a_queue_file_with_a_wrong_mode(self):
        r = self.installed(SUBMITTER, [self.sendmail, "-odq", "carol"], message("one"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertExit(self.box.run("mailctl", ["check"]), 0)
        (queue_id,) = self.box.queued()
        os.chmod(os.path.join(self.box.spool, "queue", queue_id), 0o644)
        r = self.box.run("mailctl", ["check"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(queue_id, (r.stdout + r.stderr).decode())

    def test_a_log_file_created_by_the_set_uid_sendmail_is_not_readable_by_the_submitter(self):
        # The log folder belongs to the spool owner; the file is new.
        logs = os.path.join(self.box.dir, "logs")
        os.mkdir(logs, 0o755)
        os.chown(logs, SPOOL_OWNER, SPOOL_OWNER)
        log = os.path.join(logs, "mail.log")
        with open(self.box.conf) as f:
            conf = f.read().replace(f"log = {self.box.log}\n", f"log = {log}\n")
        r = self.installed(SUBMITTER, [self.sendmail, "-odq", "carol"], message("one"), conf=conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(log)
        self.assertEqual(st.st_uid, SPOOL_OWNER)
        self.assertEqual(stat.S_IMODE(st.st_mode) & 0o077, 0, oct(st.st_mode))
        # The file's group is the submitter's (set-uid, not set-gid): group bits would let them read it.
        for uid in (SUBMITTER, OTHER_USER):
            self.assertNotEqual(self.as_user(uid, ["cat", log]).returncode, 0, f"uid {uid} reads the log")


class SetuidConfiguration(SetuidBase):
    def test_sendmail_refuses_dash_c_and_queues_nothing(self):
        r = self.as_user(SUBMITTER, [self.sendmail, "-odq", "-C", self.box.conf, "carol"], message("x"))
        self.assertRefused(r, "sendmail", "-C")
        self.assertEqual(self.spool_snapshot(), {})

    def test_sendmail_refuses_mailroom_conf_and_queues_nothing(self):
        r = self.as_user(SUBMITTER, [self.sendmail, "-odq", "carol"], message("x"), env={"MAILROOM_CONF": self.box.conf})
        self.assertRefused(r, "sendmail", "MAILROOM_CONF")
        self.assertEqual(self.spool_snapshot(), {})

    def test_every_set_uid_program_refuses_dash_c_and_mailroom_conf(self):
        for program, args in (("mta", ["-q"]), ("mailq", []), ("mailctl", ["flush"]), ("mda", ["alice"]),
                              ("sendmail", ["-q"]), ("sendmail", ["-bp"])):
            with self.subTest(program=program, args=args):
                r = self.as_user(SUBMITTER, [self.setuid(program), "-C", self.box.conf] + args, message("x"))
                self.assertRefused(r, program, "-C")
                r = self.as_user(SUBMITTER, [self.setuid(program)] + args, message("x"),
                                 env={"MAILROOM_CONF": self.box.conf})
                self.assertRefused(r, program, "MAILROOM_CONF")

    def test_a_refused_dash_c_does_not_tell_whether_the_file_exists(self):
        # A file only the spool owner can read, and a name beside it that does not exist.
        secret_dir = os.path.join(self.box.dir, "secret")
        os.mkdir(secret_dir, 0o700)
        os.chown(secret_dir, SPOOL_OWNER, SPOOL_OWNER)
        present = os.path.join(secret_dir, "present")
        with open(present, "w") as f:
            f.write("not a configuration\n")
        os.chown(present, SPOOL_OWNER, SPOOL_OWNER)
        missing = os.path.join(secret_dir, "missing")
        answers = []
        for path in (present, missing):
            r = self.as_user(SUBMITTER, [self.sendmail, "-odq", "-C", path, "carol"], message("x"))
            answers.append((r.returncode, r.stdout, r.stderr.replace(path.encode(), b"FILE")))
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[0][0], 77)


class SetuidAttacks(SetuidBase):
    """What a user could do with a set-uid sendmail that obeyed their configuration."""

    def attacker_conf(self, **settings):
        text = "".join(f"{k} = {v}\n" for k, v in settings.items())
        path = os.path.join(self.box.dir, f"evil-{len(os.listdir(self.box.dir))}.conf")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    def test_no_log_line_is_appended_to_another_users_queue_entry(self):
        victim = self.queue_as_root("dave", "victim")
        entry = os.path.join(self.box.spool, "queue", victim)
        before = self.spool_snapshot()
        conf = self.attacker_conf(myhostname="test.example", spool_dir=os.path.join(self.box.dir, "own-spool"),
                                  log=entry)
        for how in (["-C", conf], []):
            env = {} if how else {"MAILROOM_CONF": conf}
            r = self.as_user(SUBMITTER, [self.sendmail, "-odq"] + how + ["carol"], message("x"), env=env)
            self.assertEqual(r.returncode, 77, r.stderr)
        self.assertEqual(self.spool_snapshot(), before)
        # The entry is still sound: root's runner delivers it.
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertEqual(self.box.queued("quarantine"), [])
        self.assertIn("victim", self.box.mbox("dave")[0]["Subject"])

    def test_sendmail_q_with_the_callers_configuration_bounces_nothing(self):
        # Mail for a domain that is not ours stays deferred; with the attacker's
        # mydestination and maximal_queue_lifetime it would all bounce at once.
        self.queue_as_root("someone@elsewhere.example", "one")
        self.queue_as_root("dave", "two")
        before = self.spool_snapshot()
        conf = self.attacker_conf(myhostname="test.example", spool_dir=self.box.spool, mydestination="nowhere.example",
                                  maximal_queue_lifetime="0s", bounce_queue_lifetime="0s", log=self.box.log)
        for how, env in ((["-C", conf], {}), ([], {"MAILROOM_CONF": conf})):
            with self.subTest(how=how, env=env):
                r = self.as_user(SUBMITTER, [self.sendmail] + how + ["-q"], env=env)
                self.assertEqual(r.returncode, 77, r.stderr)
                self.assertEqual(self.spool_snapshot(), before)

    CALLER_ENV = {"MAILROOM_CONF": "", "TZ": "Pacific/Kiritimati", "LANG": "C.UTF-8", "HOME": "/root",
                  "LD_LIBRARY_PATH": "/tmp", "FOO": "bar"}

    def stand_in_mta(self):
        """Replaces the set-uid mta by a script that writes down its arguments and
        environment; returns the folder it writes them to."""
        out = os.path.join(self.box.dir, "seen")
        os.mkdir(out, 0o777)
        os.chmod(out, 0o777)
        mta = self.setuid("mta")
        os.unlink(mta)
        with open(mta, "w") as f:
            f.write(f'#!/bin/sh\nenv > {out}/env.new\nprintf "%s\\n" "$@" > {out}/args\nmv {out}/env.new {out}/env\n')
        os.chmod(mta, 0o755)
        return out

    def assertStartedClean(self, out, args):
        deadline = time.time() + 30
        while not os.path.exists(os.path.join(out, "env")) and time.time() < deadline:
            time.sleep(0.05)
        with open(os.path.join(out, "args")) as f:
            self.assertEqual(f.read().split(), args)
        with open(os.path.join(out, "env")) as f:
            env = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
        self.assertEqual(env.get("PATH"), SET_ID_PATH)
        for name in self.CALLER_ENV:
            self.assertNotIn(name, env)

    def test_sendmail_q_starts_mta_with_the_installed_configuration_and_no_environment_of_the_caller(self):
        out = self.stand_in_mta()
        r = self.installed(SUBMITTER, [self.sendmail, "-q"], env=self.CALLER_ENV)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertStartedClean(out, ["-q"])

    def test_a_submission_starts_its_delivery_with_the_installed_configuration_and_no_environment_of_the_caller(self):
        out = self.stand_in_mta()
        r = self.installed(SUBMITTER, [self.sendmail, "carol"], message("x"), env=self.CALLER_ENV)
        self.assertEqual(r.returncode, 0, r.stderr)
        (queue_id,) = self.box.queued()
        self.assertStartedClean(out, ["-q", "-I", queue_id])

    def test_held_entries_are_not_swept_through_a_tmp_symlink_in_a_spool_of_ones_own(self):
        # Two held entries, older than the day after which tmp/ leftovers are swept.
        held = [self.queue_as_root("dave", "held one"), self.queue_as_root("dave", "held two")]
        self.assertExit(self.box.run("mailctl", ["hold"] + held), 0)
        old = time.time() - 3 * 86400
        for queue_id in held:
            os.utime(os.path.join(self.box.spool, "hold", queue_id), (old, old))
        before = self.spool_snapshot()
        # The attacker's own spool: tmp/ leads to the real spool's hold/.
        own = os.path.join(self.box.dir, "own-spool")
        os.mkdir(own, 0o777)
        os.chmod(own, 0o777)
        os.symlink(os.path.join(self.box.spool, "hold"), os.path.join(own, "tmp"))
        for folder in ("queue", "hold", "quarantine"):
            os.mkdir(os.path.join(own, folder), 0o777)
            os.chmod(os.path.join(own, folder), 0o777)
        for path in [own] + [os.path.join(own, name) for name in os.listdir(own)]:
            os.lchown(path, SUBMITTER, SUBMITTER)
        conf = self.attacker_conf(myhostname="test.example", spool_dir=own, log=self.box.log)
        r = self.as_user(SUBMITTER, [self.sendmail, "-C", conf, "-q"])
        self.assertEqual(r.returncode, 77, r.stderr)
        self.assertEqual(self.spool_snapshot(), before)
        # Even root's own runner, pointed at that spool, refuses the symlink.
        r = self.box.mta(["-q", "-C", conf])
        self.assertExit(r, 77, r"mta: error: cannot open the spool \(spool folder .*/own-spool/tmp is a symbolic link")
        self.assertEqual(self.spool_snapshot(), before)


if __name__ == "__main__":
    mrtest.main()
