"""Helpers shared by the alias, .forward and pipe integration tests
(test_alias_*.py, test_forward_delivery.py, test_pipe_delivery.py,
test_expansion_injection.py).

Mail goes in through the real `sendmail` (-odq, then `mta -q`), the runner
expands it (aliases.cdb, :include:, .forward), and the tests read the result
the way an administrator would: mailboxes with Python's mailbox module, the
log as lines in Postfix's layout, failure notices as RFC 3464 reports. Commands
run by a delivery leave proof of running in files under the sandbox's `out/`
folder (world-writable, so that `nobody` can write there); every "never ran"
check looks for a file the command would have created.
"""
import email
import email.policy
import os
import re
import signal
import time

import mrtest
import queuetest

DOMAIN = "test.example"
EXTRA_FIRST_UID = mrtest.FIRST_UID + 100


def add_users(box, names):
    """Adds nss_wrapper users (with homes) to a sandbox, as mrtest.Sandbox makes its own."""
    with open(box.passwd, "a") as passwd, open(box.group, "a") as group:
        for i, name in enumerate(names):
            uid = EXTRA_FIRST_UID + i if mrtest.IS_ROOT else os.getuid()
            gid = EXTRA_FIRST_UID + i if mrtest.IS_ROOT else os.getgid()
            home = os.path.join(box.home, name)
            os.mkdir(home)
            if mrtest.IS_ROOT:
                os.chown(home, uid, gid)
            box.uids[name] = uid
            passwd.write(f"{name}:x:{uid}:{gid}:{name.title()} Test:{home}:/bin/sh\n")
            group.write(f"{name}:x:{gid}:\n")


def parse(msg):
    """A mailbox message as an email.message.EmailMessage (the modern parser)."""
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)


def is_report(msg):
    return msg.get_content_type() == "multipart/report"


def report_blocks(notice):
    """The per-recipient blocks of an RFC 3464 notice, as dicts of lower-case field
    names to values (Final-Recipient, Original-Recipient, Action, Status, Diagnostic-Code)."""
    for part in notice.walk():
        if part.get_content_type() == "message/delivery-status":
            blocks = part.get_payload()
            out = []
            for block in blocks[1:]:
                out.append({k.lower(): str(v).strip() for k, v in block.items()})
            return out
    return []


def process_gone(pid):
    """True when pid no longer runs (gone, or a zombie no one reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat[stat.rfind(")") + 2:].split()[0] in ("Z", "X")


def descendants(root):
    """Live processes below root (by parent links in /proc)."""
    parents = {}
    for pid, fields in queuetest.proc_stats():
        if fields[0] != "Z":
            parents[pid] = int(fields[1])
    found = set()
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if pid not in found and (parent == root or parent in found):
                found.add(pid)
                changed = True
    return found


def kill_everything_below_us(proc):
    """SIGKILL the started runner and every process under this test process,
    whatever session it made for itself (a delivery child calls setsid), until
    none is left; the test must be a subreaper (queuetest.become_subreaper) so
    that orphans stay below it. Then reap what was handed to us."""
    deadline = time.monotonic() + 10
    while True:
        pids = descendants(os.getpid())
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {sorted(pids)} survive SIGKILL")
        time.sleep(0.002)
    proc.wait()
    if proc.stderr and not proc.stderr.closed:
        proc.stderr.close()
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break


def aliases_runner():
    """(name, uid, home, shell) that commands and files from the sandbox's aliases
    database run as: default_privs (nobody) when root owns the database, as it does
    when the tests run as root; otherwise its owner (docs/aliases.md), the caller,
    whom the sandbox's passwd names by its first user with that uid."""
    if mrtest.IS_ROOT:
        return "nobody", 65534, "/nonexistent", "/usr/sbin/nologin"
    return mrtest.USERS[0], os.getuid(), None, "/bin/sh"


class AliasCase(mrtest.TestCase):
    """A sandbox with an aliases file, a world-writable `out/` folder for the proof
    files of commands, and helpers to submit, run the queue and read the results."""
    extra_users = []

    def setUp(self):
        super().setUp()
        if self.extra_users:
            add_users(self.box, self.extra_users)
        self.out = os.path.join(self.box.dir, "out")
        os.mkdir(self.out)
        os.chmod(self.out, 0o1777)

    # ---- setting up

    def aliases(self, text):
        """Writes the sandbox's aliases file (configured as `aliases`) and compiles it."""
        with open(self.box.aliases, "w") as f:
            f.write(text)
        result = self.box.run("newaliases", [])
        self.assertExit(result, 0)
        return result

    def script(self, name, body):
        """An executable /bin/sh script in the sandbox (readable by everyone: it may
        run as nobody); returns its path. OUT in it is the out/ folder."""
        path = os.path.join(self.box.dir, name)
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\nOUT={self.out}\n{body}")
        os.chmod(path, 0o755)
        return path

    def home(self, user):
        return os.path.join(self.box.home, user)

    def write_forward(self, user, text, name=".forward", mode=0o644, owner=None):
        """USER's .forward (or .forward+ext) owned by the user (or owner) as root."""
        path = os.path.join(self.home(user), name)
        with open(path, "w") as f:
            f.write(text)
        if mrtest.IS_ROOT:
            uid = self.box.uids[owner or user]
            os.chown(path, uid, uid)
        os.chmod(path, mode)
        return path

    def out_path(self, name):
        return os.path.join(self.out, name)

    def read_out(self, name):
        with open(self.out_path(name)) as f:
            return f.read()

    # ---- mail in, queue run

    def submit(self, args, msg=None, code=0, seq=None, sender="alice"):
        """sendmail -odq -f SENDER ARGS; returns the new queue ID (None when refused)."""
        if msg is None:
            msg = mrtest.message(f"message {seq}", extra_headers=f"X-Seq: {seq}\n" if seq else "")
        before = set(self.box.queued())
        result = self.box.sendmail(["-odq", "-f", sender] + list(args), msg)
        self.assertExit(result, code)
        new = sorted(set(self.box.queued()) - before)
        if code != 0:
            self.assertEqual(new, [], "refused, yet queued")
            return None
        self.assertEqual(len(new), 1, new)
        return new[0]

    def run_queue(self):
        result = self.box.mta(["-q"])
        self.assertExit(result, 0)
        return result

    def send(self, rcpts, seq, sender="alice"):
        """Submits one message with X-Seq: SEQ to RCPTS and runs the queue once."""
        queue_id = self.submit(rcpts, seq=seq, sender=sender)
        self.run_queue()
        return queue_id

    # ---- reading back

    def mails(self, user):
        return queuetest.read_mbox(self.box, user)

    def seqs(self, user):
        """X-Seq values of the messages in USER's mbox, in order (notices have none)."""
        return [m["X-Seq"].strip() for m in self.mails(user) if m.get("X-Seq") is not None]

    def notices(self, user):
        return [n for n in (parse(m) for m in self.mails(user)) if is_report(n)]

    def log(self):
        return queuetest.log_lines(self.box)

    def leaf_lines(self, queue_id, to, orig_to=None, status=None):
        """Log lines of QUEUE_ID for a delivery to TO (a full address), optionally
        with orig_to=<ORIG_TO> and status=STATUS, in the layout of SPEC 9."""
        if orig_to and orig_to.lower() != to.lower():
            orig = re.escape(f", orig_to=<{orig_to}>")
        elif orig_to:  # Postfix leaves orig_to out when it is the same address
            orig = "(" + re.escape(f", orig_to=<{orig_to}>") + ")?"
        else:
            orig = r"(, orig_to=<[^>]*>)?"
        pattern = (re.escape(f"{queue_id}: to=<{to}>") + orig +
                   r", relay=local, .*" + (r"status=" + re.escape(status) + r"\b" if status else "status="))
        return [l for l in self.log() if re.search(pattern, l)]

    def assertLogged(self, queue_id, to, orig_to=None, status="sent", count=1, dsn=None):
        lines = self.leaf_lines(queue_id, to, orig_to, status)
        mine = [l for l in self.log() if queue_id in l]
        self.assertEqual(len(lines), count, f"log lines to=<{to}> orig_to=<{orig_to}> status={status}:\n"
                         + "\n".join(mine))
        if dsn:
            for line in lines:
                self.assertRegex(line, r"dsn=" + re.escape(dsn))
        return lines

    def assertDone(self):
        self.assertEqual(self.box.queued(), [], "entries left in the queue:\n" + "\n".join(
            f"{q}: {queuetest.entry(self.box, q).records}" for q in self.box.queued()))

    def assertCopies(self, users, seq, count=1):
        for user in users:
            self.assertEqual(self.seqs(user).count(str(seq)), count, f"copies of {seq} in {user}'s mailbox")

    def assertDeliveredTo(self, user, seq, address):
        """USER's copy of SEQ says Delivered-To: ADDRESS and Return-Path: <alice@...>."""
        copies = [m for m in self.mails(user) if (m.get("X-Seq") or "").strip() == str(seq)]
        self.assertEqual(len(copies), 1, f"{user} has {len(copies)} copies of {seq}")
        self.assertEqual(copies[0]["Delivered-To"].strip(), address)
        return copies[0]

    def assertNotice(self, user, status_prefix, text_re=None, recipient=None):
        """USER's mailbox holds exactly one failure notice; a per-recipient block of
        it has a Status starting with STATUS_PREFIX; TEXT_RE matches the notice."""
        notices = self.notices(user)
        self.assertEqual(len(notices), 1, f"{user} has {len(notices)} notices:\n" +
                         "\n----\n".join(n.as_string() for n in notices))
        notice = notices[0]
        self.assertIn("MAILER-DAEMON@", notice["From"])
        blocks = report_blocks(notice)
        matching = [b for b in blocks if b.get("status", "").startswith(status_prefix)]
        self.assertTrue(matching, f"no block with Status {status_prefix}: {blocks}")
        if recipient:
            self.assertTrue(any(recipient in (b.get("final-recipient", "") + b.get("original-recipient", ""))
                                for b in matching), f"no block about {recipient}: {matching}")
        if text_re:
            self.assertRegex(notice.as_string(), text_re)
        return notice
