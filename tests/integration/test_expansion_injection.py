#!/usr/bin/env python3
"""An address that arrives from outside is always an address, through the
runner's expansion too (SPEC section 5; docs/aliases.md): `"|cmd"@host`,
`/path@host`, `":include:/x"@host`, `\\bob`, `|cmd` given as sendmail arguments
or in To:/Cc: with -t end in a refusal at the door (65), a bounce or a normal
mailbox, never in a command, a file or an included list. Commands, files and
:include: are all allowed in this sandbox, so that an address taken for one
would act: the command would create a marker, the :include: list would reach
carol, the file would appear."""
import hashlib
import os
import re

import aliastest
import mrtest

D = aliastest.DOMAIN


def tree(folder):
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = os.lstat(path).st_size
    return found


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Injection(aliastest.AliasCase):
    config = {"allow_mail_to_commands": "alias, forward, include",
              "allow_mail_to_files": "alias, forward, include"}

    def setUp(self):
        super().setUp()
        self.marker = self.out_path("MARKER")
        self.written = self.out_path("written")
        self.include = self.out_path("list")
        with open(self.include, "w") as f:
            f.write(f"carol\n\"|touch {self.marker}.include\"\n")
        self.aliases("postmaster: root\n")
        # bob's .forward sends to dave: an outside "\bob" must not reach bob's mailbox past it.
        self.write_forward("bob", "dave\n")
        self.out_before = tree(self.out)
        self.passwd_before = digest("/etc/passwd")

    def forms(self):
        return [f'"|touch {self.marker}"@{D}', f'"|touch {self.marker}"', f"{self.written}@{D}",
                f'"{self.written}"@{D}', f"/etc/passwd@{D}", f'":include:{self.include}"@{D}',
                f":include:{self.include}", "\\bob", f'"\\\\bob"@{D}', f"|touch {self.marker}",
                f'"bob+|touch {self.marker}"@{D}', f"bob+out/written@{D}"]

    def assertNothingActed(self):
        self.assertFalse(os.path.exists(self.marker), "an address ran as a command")
        self.assertFalse(os.path.exists(self.marker + ".include"), "an address was read as an :include:")
        self.assertEqual(tree(self.out), self.out_before, "a file was written in out/")
        self.assertEqual(digest("/etc/passwd"), self.passwd_before)
        self.assertEqual(self.seqs("carol"), [], "an :include: list was expanded")
        # bob's mailbox gets nothing past his .forward (no "\bob" from outside).
        self.assertEqual(self.seqs("bob"), [])
        self.assertDone()

    def outcome(self, queue_id):
        """'bounced' or 'delivered' for an accepted message, from the log."""
        lines = [l for l in self.log() if re.search(re.escape(queue_id) + r": to=<.*, relay=", l)]
        self.assertTrue(lines, f"no delivery logged for {queue_id}:\n" + "\n".join(self.log()))
        for line in lines:
            self.assertRegex(line, r"status=(bounced|sent)", line)
            if "status=sent" in line:
                # only ever a mailbox (bob's .forward leads to dave's)
                self.assertRegex(line, r"to=<dave@test\.example>|to=<bob[^>]*>", line)
        return lines

    def test_each_form_as_a_sendmail_argument(self):
        for n, form in enumerate(self.forms()):
            with self.subTest(recipient=form):
                result = self.box.sendmail(["-odq", "-f", "alice", form], mrtest.message(
                    "arg", extra_headers=f"X-Seq: a{n}\n"))
                if result.returncode == 65:
                    self.assertEqual(self.box.queued(), [], "refused, yet queued")
                else:
                    self.assertExit(result, 0)
                    queue_id = self.box.queued()[0]
                    self.run_queue()
                    self.outcome(queue_id)
                self.assertNothingActed()

    def test_the_forms_in_to_and_cc_with_dash_t(self):
        forms = self.forms()
        for n in range(0, len(forms), 2):
            pair = forms[n:n + 2]
            with self.subTest(headers=pair):
                msg = (f"From: alice@{D}\nTo: {pair[0]}\nCc: {pair[-1]}\nSubject: t{n}\nX-Seq: t{n}\n\nbody\n")
                result = self.box.sendmail(["-odq", "-f", "alice", "-t"], msg)
                if result.returncode == 65:
                    self.assertEqual(self.box.queued(), [], "refused, yet queued")
                else:
                    self.assertExit(result, 0)
                    queue_id = self.box.queued()[0]
                    self.run_queue()
                    self.outcome(queue_id)
                self.assertNothingActed()

    def test_a_quoted_pipe_is_an_unknown_user_that_bounces_5_1_1(self):
        # The one form every address parser accepts: it must reach the runner and bounce there.
        queue_id = self.submit([f'"|touch {self.marker}"@{D}'], seq="q1")
        self.run_queue()
        self.assertNothingActed()
        lines = self.outcome(queue_id)
        self.assertTrue(all("dsn=5.1.1, status=bounced" in l for l in lines), lines)
        self.assertNotice("alice", "5.1.1")

    def test_an_extension_holding_a_slash_goes_through_bobs_forward(self):
        queue_id = self.submit([f"bob+out/written@{D}"], seq="x1")
        self.run_queue()
        self.assertFalse(os.path.exists(self.written))
        self.assertEqual(tree(self.out), self.out_before)
        self.assertEqual(self.seqs("dave"), ["x1"])  # .forward+EXT skipped, .forward used
        self.assertLogged(queue_id, f"dave@{D}", orig_to=f"bob+out/written@{D}")
        # docs/forward.md: an extension holding '/' skips the .forward+EXT item, logged.
        self.assertTrue([l for l in self.log() if queue_id in l and "extension \"out/written\" holds '/'" in l],
                        "\n".join(self.log()))


if __name__ == "__main__":
    mrtest.main()
