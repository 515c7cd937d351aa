"""newaliases (SPEC 1, 5; docs/aliases.md): the summary line, the database file
(mode, atomic replacement, old database kept on a syntax error), -f, sendmail -bi
and -I, mailctl check's freshness warning, and hostile aliases files."""
import os
import re
import subprocess

import mrtest

SUMMARY = re.compile(rb"^newaliases: (\d+) aliases, longest (\d+) bytes, (\d+) bytes total\n$")


class NewaliasesTest(mrtest.TestCase):
    def setUp(self):
        super().setUp()
        self.aliases = os.path.join(self.box.dir, "aliases")
        self.db = self.aliases + ".cdb"
        self.box.write("mailroom.conf", f"aliases = {self.aliases}\n", mode="a")

    def newaliases(self, *args, code=0, stderr_re=None):
        result = self.box.run("newaliases", list(args))
        self.assertExit(result, code, stderr_re)
        return result

    def db_bytes(self):
        with open(self.db, "rb") as f:
            return f.read()

    def summary(self, result):
        m = SUMMARY.match(result.stdout)
        self.assertIsNotNone(m, f"stdout: {result.stdout!r}")
        return tuple(int(x) for x in m.groups())

    # ---- the summary and the database

    def test_summary_line_and_database_mode(self):
        self.box.write("aliases", "postmaster: root\nteam: alice, bob\n  carol\n# note\nab: cd\n")
        old_umask = os.umask(0o077)
        try:
            result = self.newaliases()
        finally:
            os.umask(old_umask)
        # 3 aliases; longest right-hand side "alice, bob\n  carol" (18); names + sides.
        self.assertEqual(self.summary(result), (3, 18, 10 + 4 + 4 + 18 + 2 + 2))
        self.assertEqual(result.stderr, b"")
        self.assertEqual(os.stat(self.db).st_mode & 0o7777, 0o644)
        data = self.db_bytes()
        self.assertIn(b"team", data)
        self.assertIn(b"mailroom-alias 1\n2 7\nalice, bob\n  carol", data)
        self.assertEqual([n for n in os.listdir(self.box.dir) if ".tmp." in n], [])

    def test_postmaster_is_added_with_a_note(self):
        self.box.write("aliases", "bob: alice\n")
        result = self.newaliases()
        self.assertEqual(self.summary(result)[0], 2)
        self.assertIn(b"newaliases: " + self.aliases.encode() + b" has no postmaster alias: added postmaster: root",
                      result.stderr)
        self.assertIn(b"postmaster", self.db_bytes())

    def test_duplicate_keeps_the_first_and_warns_naming_both_lines(self):
        self.box.write("aliases", "postmaster: root\nbob: first\nBob: second\n")
        result = self.newaliases()
        self.assertEqual(self.summary(result)[0], 2)
        self.assertIn(f"{self.aliases}:3: warning: duplicate alias 'bob' ignored: the entry at line 2 is used"
                      .encode(), result.stderr)
        data = self.db_bytes()
        self.assertIn(b"first", data)
        self.assertNotIn(b"second", data)

    def test_dash_f_compiles_another_file(self):
        other = self.box.write("other", "postmaster: root\nx: y\n")
        result = self.newaliases("-f", other)
        self.assertEqual(self.summary(result)[0], 2)
        self.assertTrue(os.path.exists(other + ".cdb"))
        self.assertFalse(os.path.exists(self.db))

    def test_syntax_error_keeps_the_old_database(self):
        self.box.write("aliases", "postmaster: root\nbob: alice\n")
        self.newaliases()
        before = self.db_bytes()
        inode = os.stat(self.db).st_ino
        self.box.write("aliases", "postmaster: root\nbob: alice\nbroken line\n")
        result = self.newaliases(code=65)
        self.assertEqual(result.stderr.decode(),
                         f"{self.aliases}:3: error: missing ':' after alias name 'broken'\n")
        self.assertEqual(result.stdout, b"")
        self.assertEqual(self.db_bytes(), before)
        self.assertEqual(os.stat(self.db).st_ino, inode)
        self.assertEqual([n for n in os.listdir(self.box.dir) if ".tmp." in n], [])

    def test_replacement_is_a_rename(self):
        self.box.write("aliases", "postmaster: root\n")
        self.newaliases()
        inode = os.stat(self.db).st_ino
        held = open(self.db, "rb")  # a reader of the old database keeps it whole
        old = held.read()
        self.box.write("aliases", "postmaster: root\nnew: alias\n")
        self.newaliases()
        self.assertNotEqual(os.stat(self.db).st_ino, inode)
        held.seek(0)
        self.assertEqual(held.read(), old)
        held.close()

    def test_missing_file_exits_66(self):
        self.newaliases(code=66, stderr_re=r"^newaliases: error: cannot read the aliases file \(open .*aliases: "
                                           r"No such file or directory\)\n$")

    def test_folder_not_writable_exits_73(self):
        sub = os.path.join(self.box.dir, "ro")
        os.mkdir(sub)
        path = os.path.join(sub, "aliases")
        with open(path, "w") as f:
            f.write("postmaster: root\n")
        os.chmod(sub, 0o555)
        # Root writes into any folder: run it as a sandbox user then.
        become = (lambda: os.setuid(self.box.uids["alice"])) if mrtest.IS_ROOT else None
        result = subprocess.run([os.path.join(mrtest.BIN, "newaliases"), "-f", path], capture_output=True,
                                env=self.box.env(), preexec_fn=become, timeout=60)
        self.assertExit(result, 73, r"^newaliases: error: cannot write .*ro/aliases.cdb \(create .*Permission "
                                    r"denied\); the old database is unchanged\n$")
        self.assertEqual(os.listdir(sub), ["aliases"])

    def test_usage(self):
        self.newaliases("-x", code=64, stderr_re=r"^newaliases: error: bad argument -x")
        self.newaliases("-f", code=64, stderr_re=r"needs a value")

    # ---- sendmail -bi / -I

    def test_sendmail_bi_and_I_run_newaliases(self):
        self.box.write("aliases", "postmaster: root\nbob: alice\n")
        for flag in ("-bi", "-I"):
            if os.path.exists(self.db):
                os.unlink(self.db)
            result = self.box.sendmail([flag], b"")
            self.assertExit(result, 0)
            self.assertEqual(self.summary(result)[0], 2, flag)
            self.assertTrue(os.path.exists(self.db), flag)
        self.box.write("aliases", "bad line\n")
        self.assertExit(self.box.sendmail(["-bi"], b""), 65, r"aliases:1: error: missing ':'")

    # ---- mailctl check

    def test_mailctl_check_warns_about_a_stale_database(self):
        self.box.write("aliases", "postmaster: root\n")
        self.box.sendmail(["-odq", "bob"], mrtest.message())  # makes the spool
        result = self.box.run("mailctl", ["check"])
        self.assertIn(b"aliases.cdb is missing: run newaliases", result.stderr)
        self.newaliases()
        result = self.box.run("mailctl", ["check"])
        self.assertNotIn(b"aliases", result.stderr)
        old = os.stat(self.aliases).st_mtime - 600
        os.utime(self.db, (old, old))
        result = self.box.run("mailctl", ["check"])
        self.assertExit(result, 78, r"mailctl: error: aliases database .*aliases.cdb is older than .*aliases: "
                                    r"run newaliases")
        self.newaliases()
        self.assertNotIn(b"aliases", self.box.run("mailctl", ["check"]).stderr)

    # ---- hostile files

    def test_ten_thousand_lines(self):
        lines = ["postmaster: root"] + [f"user{i}: target{i}@example.org, local{i}" for i in range(9999)]
        self.box.write("aliases", "\n".join(lines) + "\n")
        result = self.newaliases()
        self.assertEqual(self.summary(result)[0], 10000)

    def hostile(self, data, pattern):
        with open(self.aliases, "wb") as f:
            f.write(data)
        result = self.newaliases(code=65)
        text = result.stderr.decode(errors="replace")
        self.assertRegex(text, "^" + re.escape(self.aliases) + pattern)
        self.assertEqual(text.count("\n"), 1, text)
        self.assertFalse(os.path.exists(self.db))

    def test_nul_byte(self):
        self.hostile(b"postmaster: root\nbob: al\0ice\n", r":2: error: NUL byte at column 8\n$")

    def test_bare_cr(self):
        self.hostile(b"postmaster: root\rbob: alice\n", r":1: error: carriage return at column 17\n$")

    def test_one_megabyte_line(self):
        self.hostile(b"bob: " + b"a" * (1 << 20) + b"\n", r":1: error: line is longer than 65536 bytes\n$")

    def test_binary_garbage(self):
        data = bytes((i * 7919 + 13) % 256 for i in range(200000))
        self.hostile(data, r":\d+: error: ")

    def test_escape_sequences_are_not_echoed(self):
        self.hostile(b"bob: \"\x1b[2J\n", r":1: error: control character 0x1b at column 7\n$")


if __name__ == "__main__":
    mrtest.main()
