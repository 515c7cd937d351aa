#!/usr/bin/env python3
"""mrtest.main() exits as ctest must read a script: a skipped test shows as skipped
(77), never as passed. Tiny synthetic suites are run as scripts and their exit
codes and output read back; every integration script must end in mrtest.main()."""
import glob
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest

import mrtest

HERE = os.path.dirname(os.path.abspath(__file__))


class ExitCodes(unittest.TestCase):
    def run_suite(self, body):
        with tempfile.TemporaryDirectory() as folder:
            script = os.path.join(folder, "suite.py")
            with open(script, "w") as f:
                f.write("import unittest\nimport mrtest\n\n" + textwrap.dedent(body) +
                        "\n\nif __name__ == '__main__':\n    mrtest.main()\n")
            env = dict(os.environ, PYTHONPATH=HERE)
            return subprocess.run([sys.executable, script], capture_output=True, text=True,
                                  env=env, timeout=60)

    def test_all_passed_exits_0(self):
        r = self.run_suite("""
            class T(unittest.TestCase):
                def test_a(self): self.assertTrue(True)
                def test_b(self): self.assertTrue(True)
            """)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("SKIPPED", r.stderr)

    def test_one_skipped_among_passes_exits_77_and_names_it(self):
        r = self.run_suite("""
            class T(unittest.TestCase):
                def test_a(self): self.assertTrue(True)
                @unittest.skip("needs a unicorn")
                def test_b(self): self.fail("must not run")
            """)
        self.assertEqual(r.returncode, mrtest.SKIPPED_EXIT, r.stderr)
        self.assertIn("1 of 2 tests SKIPPED", r.stderr)
        self.assertIn("skipped: __main__.T.test_b: needs a unicorn", r.stderr)

    def test_a_skipped_class_counts_each_of_its_tests(self):
        r = self.run_suite("""
            @unittest.skipUnless(False, "not here")
            class T(unittest.TestCase):
                def test_a(self): pass
                def test_b(self): pass
            """)
        self.assertEqual(r.returncode, mrtest.SKIPPED_EXIT, r.stderr)
        self.assertIn("2 of 2 tests SKIPPED", r.stderr)

    def test_a_failure_wins_over_a_skip(self):
        r = self.run_suite("""
            class T(unittest.TestCase):
                def test_a(self): self.fail("broken")
                @unittest.skip("later")
                def test_b(self): pass
            """)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("skipped: __main__.T.test_b: later", r.stderr)

    def test_an_error_or_unexpected_success_fails(self):
        r = self.run_suite("""
            class T(unittest.TestCase):
                def test_a(self): raise OSError("boom")
            """)
        self.assertEqual(r.returncode, 1, r.stderr)
        r = self.run_suite("""
            class T(unittest.TestCase):
                @unittest.expectedFailure
                def test_a(self): pass
            """)
        self.assertEqual(r.returncode, 1, r.stderr)

    def test_a_script_that_ran_no_test_does_not_pass(self):
        r = self.run_suite("""
            class T(unittest.TestCase):
                pass
            """)
        self.assertEqual(r.returncode, mrtest.NOTHING_RAN_EXIT, r.stderr)

    def test_every_integration_script_exits_through_mrtest_main(self):
        scripts = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
        self.assertGreater(len(scripts), 10)
        for script in scripts:
            with open(script) as f:
                text = f.read()
            with self.subTest(script=os.path.basename(script)):
                # The call is the file's last statement: a test class defined after it
                # would never run (a script is run, not imported, by ctest).
                self.assertTrue(text.rstrip().endswith('if __name__ == "__main__":\n    mrtest.main()'),
                                "does not end in mrtest.main()")
                self.assertIsNone(re.search(r"(?m)^\s*unittest\.main\(", text), "calls unittest.main")


if __name__ == "__main__":
    mrtest.main()
