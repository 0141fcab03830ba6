"""How the OpenStack fixture starts its services: RabbitMQ with its own
epmd, Keystone (its database, Fernet keys and bootstrap), the other
databases' syncs, and Placement, Glance and Nova's services, each in its
own process group. A mixin of openstack_fixture.OpenStack, which holds the
processes (_spawn, _run) and stops them."""

import os
import pwd
import socket
import threading
import time

from openstack_names import ADMIN_PASSWORD, NETWORK, PYTHON, REGION

HERE = os.path.dirname(os.path.abspath(__file__))


class Services:
    def _start_rabbit(self):
        t0 = time.monotonic()
        rabbit = pwd.getpwnam("rabbitmq")
        os.chown(self.path("rabbit"), rabbit.pw_uid, rabbit.pw_gid)
        env = self._rabbit_env()
        # Our own epmd on our own port, in the foreground, so that its PID
        # is ours to stop (rabbit would otherwise start a detached one).
        self._spawn("epmd", ["epmd", "-port", str(self.ports["epmd"]), "-address", "127.0.0.1"],
                    env=env, user="rabbitmq")
        self._spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=env, user="rabbitmq")
        deadline = time.monotonic() + 120
        while True:
            self._check_alive("rabbitmq")
            try:
                with socket.create_connection(("127.0.0.1", self.ports["amqp"]), timeout=2) as s:
                    s.sendall(b"AMQP\x00\x00\x09\x01")
                    if s.recv(8)[:1] == b"\x01":  # a method frame: connection.start
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("RabbitMQ did not accept AMQP within 120 s:\n"
                                   + self._tail(self.path("log", "rabbitmq.out")))
            time.sleep(0.3)
        self.timings["rabbit"] = time.monotonic() - t0

    def _start_keystone(self):
        t0 = time.monotonic()
        me = pwd.getpwuid(os.getuid())
        url = self.auth_url + "/"
        owner = ["--keystone-user", me.pw_name, "--keystone-group", str(me.pw_gid)]
        self._run("keystone-manage", self._manage("keystone", self.path("etc/keystone/keystone.conf"), [
            ["db_sync"], ["fernet_setup", *owner], ["credential_setup", *owner],
            ["bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-admin-url", url,
             "--bootstrap-internal-url", url, "--bootstrap-public-url", url, "--bootstrap-region-id", REGION]]))
        self._wal("keystone")
        self._spawn("keystone", ["uwsgi", "--ini", self.path("etc/keystone/uwsgi.ini")])
        self._wait_http("keystone", self.auth_url)
        self.timings["keystone"] = time.monotonic() - t0

    def _sync_databases(self):
        t0 = time.monotonic()
        env = {"OS_PLACEMENT_CONFIG_DIR": self.path("etc/placement")}
        side = [threading.Thread(target=f) for f in (
            lambda: self._run("placement-manage", ["placement-manage", "--config-dir", self.path("etc/placement"),
                                                   "db", "sync"], env=env),
            lambda: self._run("glance-manage", ["glance-manage", "--config-file",
                                                self.path("etc/glance/glance-api.conf"), "db_sync"]))]
        errors = []
        for t in side:
            t.run = (lambda run: lambda: self._catch(run, errors))(t.run)
            t.start()
        self._run("nova-manage", [PYTHON, "-P", os.path.join(HERE, "manage.py"), "nova",
                                  self.path("etc/nova/nova.conf"), self._db("nova_cell0")])
        for t in side:
            t.join()
        if errors:
            raise errors[0]
        for db in ("placement", "glance", "nova_api", "nova_cell0", "nova"):
            self._wal(db)
        self.timings["db syncs"] = time.monotonic() - t0

    @staticmethod
    def _manage(project, config, commands):
        """One interpreter for several keystone-manage or nova-manage
        commands (manage.py): each start of one costs seconds of CPU."""
        argv = [PYTHON, "-P", os.path.join(HERE, "manage.py"), project, config]
        for i, cmd in enumerate(commands):
            argv += (["--"] if i else []) + cmd
        return argv

    @staticmethod
    def _catch(f, errors):
        try:
            f()
        except BaseException as e:  # noqa: B902 - re-raised by the caller
            errors.append(e)

    def _start_services(self):
        d = self.dir
        nova_conf = ["--config-file", self.path("etc/nova/nova.conf")]
        self._spawn("placement", ["uwsgi", "--ini", self.path("etc/placement/uwsgi.ini")])
        self._spawn("glance-api", ["glance-api", "--config-file", self.path("etc/glance/glance-api.conf")])
        self._spawn("nova-api", ["uwsgi", "--ini", self.path("etc/nova/uwsgi.ini")])
        self._spawn("nova-conductor", ["nova-conductor"] + nova_conf)
        self._spawn("nova-scheduler", ["nova-scheduler"] + nova_conf)
        # python3 -P: the scratch directory holds a nova/ state folder,
        # which would shadow the nova package on sys.path.
        self._spawn("nova-compute", [PYTHON, "-P", "-c", "import sys; from nova.cmd.compute import main; "
                                     "sys.argv[0] = 'nova-compute'; sys.exit(main())"] + nova_conf
                    + ["--log-file", f"{d}/log/nova-compute.log"])
        self._spawn("neutron-stub", [PYTHON, os.path.join(HERE, "neutron_stub.py"), str(self.ports["neutron"]),
                                     self.network_id, NETWORK, f"{d}/log/neutron-stub-requests.log"])
