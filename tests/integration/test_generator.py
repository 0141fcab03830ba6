"""buildyard-generator run the way systemd runs it, on temporary directories:
the symlinks it makes, their escaping, which workers it skips, and a bad
config that makes it generate nothing and still exit 0."""

import os
import subprocess
import tempfile
import textwrap
import unittest

SOURCE = os.environ.get("BUILDYARD_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("BUILDYARD_BIN", os.path.join(SOURCE, "build", "bin"))
GENERATOR = os.path.join(BIN, "buildyard-generator")
WANTS = "buildyard-workers.target.wants"


class GeneratorTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="by-generator-")
        self.addCleanup(self.tmp.cleanup)
        self.etc = os.path.join(self.tmp.name, "etc")
        os.makedirs(os.path.join(self.etc, "master.d"))
        self.out = [os.path.join(self.tmp.name, d) for d in ("normal", "early", "late")]
        for d in self.out:
            os.mkdir(d)

    def write(self, relative, text):
        with open(os.path.join(self.etc, relative), "w") as f:
            f.write(textwrap.dedent(text))

    def run_generator(self):
        env = {k: v for k, v in os.environ.items() if k not in ("SYSTEMD_SCOPE", "CREDENTIALS_DIRECTORY")}
        p = subprocess.run([GENERATOR, "--config", os.path.join(self.etc, "master.ini"), *self.out],
                           env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stderr

    def generated(self):
        """Every file below the three output directories, relative, with its link target."""
        found = {}
        for d in self.out:
            for root, dirs, files in os.walk(d):
                for name in dirs + files:
                    path = os.path.join(root, name)
                    if os.path.islink(path) or not os.path.isdir(path):
                        found[os.path.relpath(path, self.tmp.name)] = os.readlink(path)
        return found

    def test_local_workers_get_wants_symlinks(self):
        self.write("master.ini", """\
            [master]
            listen =
            [worker bot1]
            type = local
            [worker bot-linux]
            type = local
            [worker remote1]
            password = secret
            [builder b]
            workers = bot1, bot-linux, remote1
            step.1 = true
            """)
        self.assertEqual(self.run_generator(), "")
        links = self.generated()
        self.assertEqual(sorted(links), [
            f"normal/{WANTS}/buildyard-worker@bot1.service",
            f"normal/{WANTS}/buildyard-worker@bot\\x2dlinux.service",
        ])
        for target in links.values():
            self.assertTrue(os.path.isabs(target), target)
            self.assertEqual(os.path.basename(target), "buildyard-worker@.service")

    def test_drop_in_adds_a_worker(self):
        self.write("master.ini", "[master]\nlisten =\n[worker bot1]\ntype = local\n")
        self.write("master.d/50-more.ini", "[worker bot2]\ntype = local\n")
        self.run_generator()
        self.assertEqual(sorted(self.generated()), [
            f"normal/{WANTS}/buildyard-worker@bot1.service",
            f"normal/{WANTS}/buildyard-worker@bot2.service",
        ])

    def test_secrets_are_not_read(self):
        # At boot there are no credentials; a remote worker's secret must
        # not keep the local ones from starting.
        self.write("master.ini", """\
            [master]
            listen =
            [worker bot1]
            type = local
            [worker remote1]
            password_credential = remote1.password
            [worker remote2]
            password_file = /nonexistent/secret
            """)
        self.assertEqual(self.run_generator(), "")
        self.assertEqual(sorted(self.generated()), [f"normal/{WANTS}/buildyard-worker@bot1.service"])

    def test_no_local_workers_no_files(self):
        self.write("master.ini", "[master]\nlisten =\n[worker remote1]\npassword = x\n")
        self.run_generator()
        self.assertEqual(self.generated(), {})

    def test_missing_config_is_quiet(self):
        self.assertEqual(self.run_generator(), "")
        self.assertEqual(self.generated(), {})

    def test_bad_config_generates_nothing_and_exits_0(self):
        self.write("master.ini", "[master]\nlisten =\n[worker bot1]\ntype = local\n")
        self.write("master.d/10-bad.ini", "[worker bot2]\ntype = local\nno_such_key = 1\n")
        err = self.run_generator()
        self.assertEqual(self.generated(), {})
        self.assertIn("does not load", err)
        self.assertIn("10-bad.ini:3: [worker bot2] no_such_key", err)


if __name__ == "__main__":
    unittest.main()
