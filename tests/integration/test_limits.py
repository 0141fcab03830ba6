"""Calls at the edges of their numbers: ListBuilds limits up to 2^64-1 and
its paging, ReadLog offsets and sizes past the end of a log, and the one
path of each build object."""

import json
import unittest

from harness import MASTER_PATH, SystemTest, bus_error, master_ini, read_log_slice

BUILD1 = "org.buildyard.Build1"
MASTER1 = "org.buildyard.Master1"
BUILD_PREFIX = "/org/buildyard/Master1/build/"


def vm_hwm_kib(pid):
    """Peak resident memory of pid, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


class Limits(SystemTest):
    def setUp(self):
        super().setUp()
        self.sys.write_config(master_ini(["w1"], {"b": (["w1"], ["echo small log"])}))
        self.sys.start_master()
        self.sys.start_worker("w1")

    def run_builds(self, n):
        ids = [self.sys.submit("b") for _ in range(n)]
        for i in ids:
            self.assertEqual(self.sys.wait_build(i)[1], "success")
        return ids

    def list_ids(self, method, *args):
        sig = "t" * len(args)
        return [int(r[0]) for r in self.sys.call(MASTER_PATH, MASTER1, method, sig, *args)[0]]

    def test_list_builds_limits_up_to_2_64(self):
        ids = self.run_builds(3)
        newest_first = sorted(ids, reverse=True)
        self.assertEqual(self.list_ids("ListBuilds", 0), newest_first)
        self.assertEqual(self.list_ids("ListBuilds", 2), newest_first[:2])
        # These once answered an empty list (a LIMIT SQLite could not parse).
        for limit in (2**63 - 1, 2**63, 2**63 + 5, 2**64 - 1):
            self.assertEqual(self.list_ids("ListBuilds", limit), newest_first, limit)

    def test_list_builds_before_pages_through_the_history(self):
        ids = sorted(self.run_builds(5), reverse=True)
        self.assertEqual(self.list_ids("ListBuildsBefore", 0, 2), ids[:2])
        self.assertEqual(self.list_ids("ListBuildsBefore", ids[1], 2), ids[2:4])
        self.assertEqual(self.list_ids("ListBuildsBefore", ids[3], 2), ids[4:])
        self.assertEqual(self.list_ids("ListBuildsBefore", ids[4], 2), [])
        self.assertEqual(self.list_ids("ListBuildsBefore", 2**64 - 1, 2**64 - 1), ids)
        # buildyardctl pages the same way.
        r = self.sys.ctl("builds", "--limit", "0", "--json")
        self.assertEqual([b["id"] for b in json.loads(r.stdout)], ids)

    def test_read_log_offsets_past_the_end(self):
        (build,) = self.run_builds(1)
        log = read_log_slice(self.sys, build, 0, 1 << 20).decode()
        self.assertIn("small log\n", log)
        size = len(log.encode())
        self.assertEqual(read_log_slice(self.sys, build, size, 10), b"")
        # Once "Internal": an offset pread() cannot take.
        for offset in (size + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1):
            self.assertEqual(read_log_slice(self.sys, build, offset, 2**64 - 1), b"", offset)
        self.assertIsNone(bus_error(self.sys, self.sys.build_path(build), f"{BUILD1}.ReadLog",
                                    f"uint64:{2**64 - 1}", f"uint64:{2**64 - 1}"))

    def test_huge_max_on_a_small_log_allocates_the_log_only(self):
        (build,) = self.run_builds(1)
        pid = self.sys.master.pid
        before = vm_hwm_kib(pid)
        for _ in range(3):
            data = read_log_slice(self.sys, build, 0, 2**64 - 1)
        self.assertLess(len(data), 4096)
        self.assertIn(b"small log\n", data)
        # The old code zero-filled an 8 MiB buffer for each such call.
        self.assertLess(vm_hwm_kib(pid) - before, 4096, "ReadLog with a huge max raised the master's peak RSS")

    def test_each_build_has_one_path(self):
        (build,) = self.run_builds(1)
        self.assertEqual(build, 1)
        self.assertEqual(self.sys.build_path(1), BUILD_PREFIX + "_31")
        self.assertEqual(self.sys.get(BUILD_PREFIX + "_31", BUILD1, "Id"), 1)
        # "+1", " 1", "01", "1" unescaped, "-1" (wraps in strtoull) and a
        # 2^64 that overflows: none of them is build 1, or any build.
        for alias in ("_2b1", "_201", "_301", "1", "_2d1", "_218446744073709551617", "_300000000000000000001"):
            r = self.sys.busctl("get-property", "org.buildyard.Master1", BUILD_PREFIX + alias, BUILD1, "Id",
                                check=False)
            self.assertNotEqual(r.returncode, 0, f"{alias} resolved: {r.stdout}")
        # Worker paths too: "_62ot" spells "bot" with an escape.
        self.assertEqual(self.sys.worker_path("w1"), "/org/buildyard/Master1/worker/w1")
        r = self.sys.busctl("get-property", "org.buildyard.Master1", "/org/buildyard/Master1/worker/_771",
                            "org.buildyard.Worker1", "Name", check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    unittest.main()
