#!/usr/bin/python3
"""Runs several keystone-manage or nova-manage commands in one interpreter.

    manage.py keystone CONFIG-FILE COMMAND [ARG...] [-- COMMAND [ARG...]]...
    manage.py nova CONFIG-FILE CELL0-DATABASE-URL

keystone: each command is what `keystone-manage --config-file CONFIG-FILE
COMMAND...` runs, in order; the first that fails ends the run with its
status. nova: what `nova-manage api_db sync`, `cell_v2 map_cell0
--database_connection CELL0-DATABASE-URL`, `cell_v2 create_cell --name
cell1` and `db sync` run, through the same command classes (nova-manage's
main() cannot run twice in one process: its database engines start once).
One interpreter instead of one per command: importing Keystone or Nova
costs seconds of CPU each time, most of the fixture's set-up.
"""
import sys
import time


def commands(args):
    cmd = []
    for a in args:
        if a == "--":
            yield cmd
            cmd = []
        else:
            cmd.append(a)
    yield cmd


def nova(config, cell0_url):
    from nova import config as nova_config
    from nova import objects
    from nova.cmd import manage
    nova_config.parse_args(["nova-manage", "--config-file", config])
    objects.register_all()
    for name, step in (("api_db sync", lambda: manage.ApiDbCommands().sync()),
                       ("cell_v2 map_cell0", lambda: manage.CellV2Commands().map_cell0(cell0_url)),
                       ("cell_v2 create_cell", lambda: manage.CellV2Commands().create_cell(name="cell1")),
                       ("db sync", lambda: manage.DbCommands().sync())):
        t0 = time.monotonic()
        rc = step()
        print(f"manage.py: {name}: exit {rc or 0} in {time.monotonic() - t0:.1f} s", flush=True)
        if rc:
            return rc
    return 0


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("keystone", "nova"):
        print(__doc__, file=sys.stderr)
        return 2
    project, config = sys.argv[1], sys.argv[2]
    if project == "nova":
        return nova(config, sys.argv[3])
    from keystone.cmd import cli
    from oslo_config import cfg
    for cmd in commands(sys.argv[3:]):
        t0 = time.monotonic()
        cfg.CONF.clear()  # forget the last command's parsed arguments
        try:
            rc = cli.main(argv=["keystone-manage", "--config-file", config, *cmd])
        except SystemExit as e:
            rc = e.code
        print(f"manage.py: {' '.join(cmd)}: exit {rc or 0} in {time.monotonic() - t0:.1f} s", flush=True)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
