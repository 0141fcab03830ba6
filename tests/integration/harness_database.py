"""Which database the master of a test System keeps its state in.

BUILDYARD_TEST_DATABASE=postgresql (set by tests/lib/postgresql.py, which
starts the server): each System's master keeps its state in a schema of
its own in that server, named by a drop-in of its own
(master.d/zz-test-database.ini), so that master.ini's lines stay where
the tests expect them. Otherwise the master's SQLite file in its state
directory, as without a drop-in.
"""

import functools
import json
import os
import sqlite3
import subprocess

PG_URI = os.environ.get("BUILDYARD_TEST_PG_URI", "") if os.environ.get(
    "BUILDYARD_TEST_DATABASE") == "postgresql" else ""
_schemas = 0


def system_database(dropin_dir):
    """The `database` value for a new System's master ("" for SQLite); on
    PostgreSQL it creates the schema and writes the drop-in into dropin_dir."""
    if not PG_URI:
        return ""
    global _schemas
    _schemas += 1
    schema = f"s{os.getpid()}_{_schemas}"
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", PG_URI, "-c", f"CREATE SCHEMA {schema}"],
                   check=True)
    database = f"{PG_URI}&options=-csearch_path%3D{schema}"
    with open(os.path.join(dropin_dir, "zz-test-database.ini"), "w") as f:
        f.write(f"[master]\ndatabase = {database}\n")
    return database


def state_rows(database, state_dir, sql):
    """The rows of `sql` (a SELECT) in a master's state, as tuples: from
    its SQLite file in state_dir, or from its PostgreSQL schema (`database`,
    from system_database) through psql, whose JSON keeps numbers numbers."""
    if not database:
        db = sqlite3.connect(os.path.join(state_dir, "state.db"), timeout=10)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", database, "-c",
                          f"SELECT coalesce(json_agg(row_to_json(r)), '[]') FROM ({sql}) r"],
                         check=True, capture_output=True, text=True).stdout
    return [tuple(row.values()) for row in json.loads(out)]


def sqlite_only(reason):
    """Marks a test method that cannot apply to a master on
    PostgreSQL, saying why. tests/lib/run-unittest.py leaves it out of a
    run with BUILDYARD_TEST_DATABASE=postgresql and names it with `reason`:
    not a skip, which CI counts as a failure, but a test that is not part
    of the PostgreSQL run. Run on PostgreSQL some other way, it fails."""
    def mark(test):
        @functools.wraps(test)
        def run(self, *args, **kwargs):
            if PG_URI:
                raise AssertionError(f"{self.id()} is for SQLite only ({reason}); "
                                     "tests/lib/run-unittest.py leaves it out on PostgreSQL")
            return test(self, *args, **kwargs)
        run.sqlite_only = reason
        return run
    return mark
