"""PgSystemTest: a SystemTest whose class shares one PostgreSQL server of
its own (tests/lib/postgresql.py, started for the class and stopped after
it), with an empty `public` schema at the start of each test. A test that
stopped the server (an outage) and failed before starting it again leaves
it to the next test's setUp."""

import os
import sys

from harness import SOURCE, SystemTest

sys.path.insert(0, os.path.join(SOURCE, "tests", "lib"))
from postgresql import Postgres  # noqa: E402


class PgSystemTest(SystemTest):
    @classmethod
    def setUpClass(cls):
        cls.pg = Postgres().start()

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()

    def setUp(self):
        super().setUp()
        if self.pg.proc is None:
            self.pg.start()
        self.pg.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
