"""A private system bus with the real Buildyard daemons, for integration tests.

Everything a test starts it also stops, by PID. The daemons come from
$BUILDYARD_BIN (build/bin), the bus policy from $BUILDYARD_SOURCE/dbus.

The test modules import everything from here; it lives, by concern, in
harness_process.py (paths, waiting, Process), harness_database.py (SQLite
or a PostgreSQL schema per System), harness_system.py (System,
master_ini), harness_bus.py (D-Bus call and signal helpers) and
harness_cases.py (SystemTest, RemoteLinkTest, build gates, latentd).
"""

from harness_bus import (SignalMonitor, all_properties, bus_error, dbus_send, process_gone,  # noqa: F401
                         read_log_slice, start_master_env, unique_names_of)
from harness_cases import (LATENT, LATENT_PATH, RemoteLinkTest, SystemTest, gate_dir, gate_step,  # noqa: F401
                           master_fingerprint, open_gate, start_latentd, wait_gate_reached)
from harness_database import PG_URI, sqlite_only  # noqa: F401
from harness_process import (BIN, MASTER, MASTER_PATH, NOBODY_UID, SOURCE, Process, free_port,  # noqa: F401
                             wait_for)
from harness_system import BUS_CONFIG, POLICY_DIR, System, master_ini  # noqa: F401
