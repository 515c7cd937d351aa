#!/usr/bin/env python3
"""The log (SPEC section 9): one line per event in Postfix's layout, so that
`pflogsumm --syslog-name=mailroom` counts mailroom's traffic as it counts
Postfix's. A scenario with N delivered, M deferred (remote) and K bounced
(unknown users) messages, then pflogsumm's grand totals against what the test
submitted, and each line's layout against SPEC section 9."""
import collections
import re
import shutil
import subprocess
import time
import unittest

import mrtest
import queuetest
from mrtest import message

N_DELIVERED, M_DEFERRED, K_BOUNCED = 6, 3, 2
LOCAL_USERS = ["bob", "carol", "dave"]

PREFIX = r"^[A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d \S+ mailroom/(?P<role>[a-z]+)\[(?P<pid>\d+)\]: "
ID = r"(?P<id>[0-9A-Za-z]{10,20})"
DELAYS = r"delay=\d+(?:\.\d+)?, delays=\d+(?:\.\d+)?/\d+(?:\.\d+)?/\d+(?:\.\d+)?/\d+(?:\.\d+)?"
LAYOUTS = {
    "pickup": PREFIX + ID + r": uid=\d+ from=<(?P<from>[^>]*)>$",
    "queue active": PREFIX + ID +
    r": from=<(?P<from>[^>]*)>, size=(?P<size>\d+), nrcpt=(?P<nrcpt>\d+) \(queue active\)$",
    "sent": PREFIX + ID + r": to=<(?P<to>[^>]+)>, relay=local, " + DELAYS +
    r", dsn=2\.0\.0, status=sent \(delivered to mailbox\)$",
    "deferred": PREFIX + ID + r": to=<(?P<to>[^>]+)>, relay=none, " + DELAYS +
    r", dsn=4\.\d{1,3}\.\d{1,3}, status=deferred \((?P<reason>.+)\)$",
    "bounced": PREFIX + ID + r": to=<(?P<to>[^>]+)>, relay=local, " + DELAYS +
    r", dsn=5\.1\.1, status=bounced \((?P<reason>.+)\)$",
    "notice": PREFIX + ID + r": sender non-delivery notification: (?P<notice>[0-9A-Za-z]{10,20})$",
    "removed": PREFIX + ID + r": removed$",
}
ROLES = {"pickup": "pickup", "queue active": "qmgr", "sent": "local", "deferred": None, "bounced": "local",
         "notice": "bounce", "removed": "qmgr"}


def grand_totals(report):
    """pflogsumm's 'Grand Totals' counts: {'received': n, ...} and the deferrals."""
    totals = {}
    for m in re.finditer(r"(?m)^\s*(\d+)([kmg]?)\s+(received|delivered|forwarded|deferred|bounced|rejected)\b(.*)$",
                         report):
        value = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024 ** 3}[m.group(2)]
        totals.setdefault(m.group(3), value)
        deferrals = re.search(r"\((\d+)\s+deferrals\)", m.group(4))
        if m.group(3) == "deferred" and deferrals:
            totals.setdefault("deferrals", int(deferrals.group(1)))
    return totals


class Log(mrtest.TestCase):
    def scenario(self):
        """Queues the messages; returns {kind: [queue ids]}."""
        ids = collections.defaultdict(list)

        def submit(kind, recipient, n):
            before = set(self.box.queued())
            r = self.box.sendmail(["-odq", "-f", "alice", recipient], message(f"{kind} {n}"))
            self.assertExit(r, 0)
            (new,) = set(self.box.queued()) - before
            ids[kind].append(new)

        for n in range(N_DELIVERED):
            submit("delivered", LOCAL_USERS[n % len(LOCAL_USERS)], n)
        for n in range(M_DEFERRED):
            submit("deferred", f"x{n}@elsewhere.example", n)
        for n in range(K_BOUNCED):
            submit("bounced", f"nosuchuser{n}", n)
        return ids

    def events(self):
        """Every log line, classified by the layout it matches; fails on a line that matches none."""
        found = collections.defaultdict(list)
        for line in queuetest.log_lines(self.box):
            kinds = [(kind, m) for kind, layout in LAYOUTS.items() if (m := re.match(layout, line))]
            if not kinds:
                self.assertRegex(line, PREFIX, "a line without the syslog layout")
                continue
            self.assertEqual(len(kinds), 1, line)
            kind, m = kinds[0]
            if ROLES[kind]:
                self.assertEqual(m.group("role"), ROLES[kind], line)
            found[kind].append(m)
        return found

    def test_every_event_is_logged_in_the_layout_of_spec_section_9(self):
        ids = self.scenario()
        self.assertExit(self.box.mta(["-q"]), 0)
        found = self.events()
        submitted = sum(len(v) for v in ids.values())
        notices = [m.group("notice") for m in found["notice"]]
        self.assertEqual(len(notices), K_BOUNCED)

        pickups = {m.group("id"): m for m in found["pickup"]}
        self.assertEqual(len(found["pickup"]), submitted)
        self.assertEqual(set(pickups), {i for v in ids.values() for i in v})
        self.assertTrue(all(m.group("from") == "alice" for m in pickups.values()))

        active = {m.group("id"): m for m in found["queue active"]}
        self.assertEqual(len(found["queue active"]), submitted + len(notices))
        for queue_id in pickups:
            self.assertEqual(active[queue_id].group("from"), "alice@test.example")
            self.assertEqual(active[queue_id].group("nrcpt"), "1")
        for queue_id in notices:
            self.assertEqual(active[queue_id].group("from"), "")

        sent = collections.Counter(m.group("id") for m in found["sent"])
        self.assertEqual(sorted(sent), sorted(ids["delivered"] + notices))
        self.assertEqual(set(sent.values()), {1})
        self.assertEqual(sorted(m.group("to") for m in found["sent"] if m.group("id") in notices),
                         ["alice@test.example"] * K_BOUNCED)
        self.assertEqual(sorted(m.group("id") for m in found["deferred"]), sorted(ids["deferred"]))
        self.assertEqual(sorted(m.group("id") for m in found["bounced"]), sorted(ids["bounced"]))
        for m in found["bounced"]:
            self.assertRegex(m.group("to"), r"^nosuchuser\d@test\.example$")
            self.assertRegex(m.group("reason"), r'^unknown user: "nosuchuser\d"$')
        self.assertEqual(sorted(m.group("id") for m in found["notice"]), sorted(ids["bounced"]))
        removed = [m.group("id") for m in found["removed"]]
        self.assertEqual(sorted(removed), sorted(ids["delivered"] + ids["bounced"] + notices))

        # One message's events in order, from one process each where SPEC says so.
        lines = queuetest.log_lines(self.box)
        for queue_id in ids["delivered"]:
            mine = [l for l in lines if f": {queue_id}: " in l]
            self.assertEqual(len(mine), 5, mine)
            self.assertRegex(mine[0], r"mailroom/pickup\[")
            self.assertRegex(mine[1], r"mailroom/cleanup\[\d+\]: \w+: message-id=<[^>]+@test\.example>$")
            self.assertRegex(mine[2], r"mailroom/qmgr\[.*\(queue active\)$")
            self.assertRegex(mine[3], r"mailroom/local\[.*status=sent")
            self.assertRegex(mine[4], r"mailroom/qmgr\[.*: removed$")

    @unittest.skipUnless(shutil.which("pflogsumm"), "pflogsumm is not installed (scripts/deps.sh installs it)")
    def test_pflogsumm_counts_what_was_submitted(self):
        day = time.strftime("%b %e")
        ids = self.scenario()
        self.assertExit(self.box.mta(["-q"]), 0)
        self.assertExit(self.box.mta(["-q"]), 0)  # a second deferral of the same messages
        # -d today, unless the test ran across midnight.
        dates = ["-d", "today"] if time.strftime("%b %e") == day else []
        r = subprocess.run(["pflogsumm", "--syslog-name=mailroom"] + dates + [self.box.log],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        report = r.stdout.decode(errors="replace")
        totals = grand_totals(report)
        expected = {
            "received": N_DELIVERED + M_DEFERRED + K_BOUNCED,  # the pickup lines; notices are not received
            "delivered": N_DELIVERED + K_BOUNCED,  # each bounce brings a notice to alice
            "deferred": M_DEFERRED,  # messages
            "deferrals": 2 * M_DEFERRED,  # attempts: two runs
            "bounced": K_BOUNCED,
            "rejected": 0,
            "forwarded": 0,
        }
        self.assertEqual({k: totals.get(k) for k in expected}, expected, report)
        self.assertEqual(len(ids["deferred"]), M_DEFERRED)
        # The per-domain and per-user tables see the same traffic.
        self.assertRegex(report, r"(?m)^\s+" + str(N_DELIVERED + K_BOUNCED) + r"\s.*\btest\.example$")
        self.assertRegex(report,
                         r"(?m)^\s+" + str(N_DELIVERED + M_DEFERRED + K_BOUNCED) + r"\s.*\balice@test\.example$")


if __name__ == "__main__":
    mrtest.main()
