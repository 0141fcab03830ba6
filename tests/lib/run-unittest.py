#!/usr/bin/python3
"""Runs one unittest module as one CTest test: run-unittest.py MODULE.

Like `python3 -m unittest -v MODULE` (run from the module's directory), and
then: a skipped test is listed by name with its reason. Under CI=true a skip,
or a module that ran no test, fails (exit 1); otherwise it exits 77, which
CTest shows as skipped (SKIP_RETURN_CODE 77) instead of counting a pass.

With BUILDYARD_TEST_DATABASE=postgresql (tests/lib/postgresql.py) it leaves
out the tests marked for SQLite only (a `sqlite_only` attribute, set by
harness.sqlite_only(reason)) and lists each with its reason: they are not
part of that run, so they are neither run nor skipped.
"""
import os
import sys
import unittest


def tests_of(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from tests_of(test)
        else:
            yield test


def leave_out_sqlite_only(suite):
    kept, left_out = unittest.TestSuite(), []
    for test in tests_of(suite):
        reason = getattr(getattr(test, getattr(test, "_testMethodName", ""), None), "sqlite_only", None)
        if reason:
            left_out.append((test, reason))
        else:
            kept.addTest(test)
    return kept, left_out


def main():
    if len(sys.argv) != 2:
        print("usage: run-unittest.py MODULE", file=sys.stderr)
        return 2
    sys.path.insert(0, os.getcwd())
    suite = unittest.defaultTestLoader.loadTestsFromName(sys.argv[1])
    left_out = []
    if os.environ.get("BUILDYARD_TEST_DATABASE") == "postgresql":
        suite, left_out = leave_out_sqlite_only(suite)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if left_out:
        print(f"\n{len(left_out)} not run on PostgreSQL in {sys.argv[1]} (SQLite only):", file=sys.stderr)
        for test, reason in left_out:
            print(f"  {test.id()}: {reason}", file=sys.stderr)
    if not result.wasSuccessful():
        return 1
    ci = os.environ.get("CI") == "true"
    if result.skipped:
        print(f"\n{len(result.skipped)} skipped in {sys.argv[1]}:", file=sys.stderr)
        for test, reason in result.skipped:
            print(f"  {test.id()}: {reason}", file=sys.stderr)
        if ci:
            print("CI=true: a skipped test fails the run", file=sys.stderr)
            return 1
        return 77
    if result.testsRun == 0:
        print(f"{sys.argv[1]}: no test ran", file=sys.stderr)
        return 1 if ci else 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
