"""Which database the master of a test System keeps its state in.

BUILDYARD_TEST_DATABASE=postgresql (set by tests/lib/postgresql.py, which
starts the server): each System's master keeps its state in a schema of
its own in that server, named by a drop-in of its own
(master.d/zz-test-database.ini), so that master.ini's lines stay where
the tests expect them. Otherwise the master's SQLite file in its state
directory, as without a drop-in.
"""

import os
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
