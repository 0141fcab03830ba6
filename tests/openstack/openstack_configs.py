"""The OpenStack fixture's configuration files: Keystone, Placement,
Glance and Nova (their ini files, uwsgi, policies), RabbitMQ's, and the
SQLite databases' URLs. A mixin of openstack_fixture.OpenStack: it reads
self.dir, self.ports, self.auth_url, self.token_expiration,
self.compute_driver, self.nova_conf_extra and self.instance_prefix."""

import os
import shutil
import sqlite3

from openstack_names import COMPUTE_HOST, REGION, ROLE, SERVICE_PASSWORD



def _ini(sections):
    out = []
    for name, items in sections.items():
        out.append(f"[{name}]")
        out.extend(f"{k} = {v}" for k, v in items.items())
        out.append("")
    return "\n".join(out)



class ConfigFiles:
    def _write(self, rel, text):
        with open(self.path(rel), "w") as f:
            f.write(text)

    def _authtoken(self):
        """keystonemiddleware's settings. token_cache_time: a service
        trusts a token it has validated for this long without asking
        Keystone again (300 s by default), so a token an admin revokes is
        refused within 5 s, not minutes."""
        return {"token_cache_time": 5, "www_authenticate_uri": f"http://127.0.0.1:{self.ports['keystone']}/",
                "auth_url": f"http://127.0.0.1:{self.ports['keystone']}/", "auth_type": "password",
                "project_domain_name": "Default", "user_domain_name": "Default", "project_name": "admin",
                "username": "admin", "password": SERVICE_PASSWORD, "region_name": REGION}

    def _service_auth(self):
        return {"auth_type": "password", "auth_url": self.auth_url, "project_name": "admin",
                "project_domain_name": "Default", "username": "admin", "user_domain_name": "Default",
                "password": SERVICE_PASSWORD, "region_name": REGION}

    def _uwsgi(self, name, port, wsgi_file, env, processes=1):
        return _ini({"uwsgi": {
            "plugins": "python3", "http-socket": f"127.0.0.1:{port}", "master": "true",
            "processes": processes, "threads": 1,  # threads > 1: SQLite "database is locked"
            "lazy-apps": "true", "enable-threads": "true", "die-on-term": "true", "buffer-size": 65535,
            "add-header": "Connection: close",  # else clients hang on keep-alive
            "wsgi-file": wsgi_file, "env": env, "need-app": "true",
        }})

    def _write_configs(self):
        d, p = self.dir, self.ports
        policy = {"enforce_new_defaults": "True", "enforce_scope": "False"}
        self._write("etc/keystone/keystone.conf", _ini({
            "DEFAULT": {"log_dir": f"{d}/log", "log_file": "keystone.log"},
            "database": {"connection": self._db("keystone")},
            "identity": {"password_hash_rounds": 4},  # bcrypt's least: each login costs ms, not 0.3 s
            "token": {"expiration": self.token_expiration},
            "fernet_tokens": {"key_repository": f"{d}/keystone/fernet-keys"},
            "credential": {"key_repository": f"{d}/keystone/credential-keys"},
            "oslo_policy": {"policy_dirs": f"{d}/etc/keystone/policy.d"},
        }))
        self._write("etc/keystone/uwsgi.ini", self._uwsgi(
            "keystone", p["keystone"], "/usr/bin/keystone-wsgi-public", f"OS_KEYSTONE_CONFIG_DIR={d}/etc/keystone",
            processes=2))
        self._write("etc/placement/placement.conf", _ini({
            "DEFAULT": {"log_dir": f"{d}/log", "log_file": "placement.log"},
            "api": {"auth_strategy": "keystone"},
            "placement_database": {"connection": self._db("placement")},
            "keystone_authtoken": self._authtoken(),
            "oslo_policy": {"policy_dirs": f"{d}/etc/placement/policy.d"},
        }))
        self._write("etc/placement/uwsgi.ini", self._uwsgi(
            "placement", p["placement"], "/usr/bin/placement-api", f"OS_PLACEMENT_CONFIG_DIR={d}/etc/placement"))
        self._write("etc/glance/glance-api.conf", _ini({
            "DEFAULT": {"bind_host": "127.0.0.1", "bind_port": p["glance"], "workers": 0, "log_dir": f"{d}/log",
                        "log_file": "glance-api.log", "enabled_backends": "file:file",
                        "enforce_secure_rbac": "True"},
            "glance_store": {"default_backend": "file"},
            "file": {"filesystem_store_datadir": f"{d}/glance/images"},
            "database": {"connection": self._db("glance")},
            "paste_deploy": {"flavor": "keystone", "config_file": "/etc/glance/glance-api-paste.ini"},
            "keystone_authtoken": self._authtoken(),
            "oslo_concurrency": {"lock_path": f"{d}/glance/lock"},
            "oslo_policy": {**policy, "policy_file": f"{d}/etc/glance/policy.yaml",
                            "policy_dirs": f"{d}/etc/glance/policy.d"},
            "os_glance_tasks_store": {"filesystem_store_datadir": f"{d}/glance/tasks"},
            "os_glance_staging_store": {"filesystem_store_datadir": f"{d}/glance/staging"},
        }))
        nova = {
            "DEFAULT": {"transport_url": f"rabbit://guest:guest@127.0.0.1:{p['amqp']}/",
                        "compute_driver": self.compute_driver, "state_path": f"{d}/nova",
                        "instances_path": f"{d}/nova/instances", "log_dir": f"{d}/log", "my_ip": "127.0.0.1",
                        "host": COMPUTE_HOST, "use_rootwrap_daemon": "False",
                        # libvirt domain names of this fixture's own (libvirt
                        # keeps definitions across its restarts).
                        "instance_name_template": self.instance_prefix + "-%08x",
                        # SQLite has one writer at a time, and a transaction
                        # that read before another's commit gets "database
                        # is locked" at once, whatever the busy timeout: a
                        # delete then ends in ERROR. Fewer writes, fewer
                        # such collisions: heartbeats every 60 s, not 10.
                        "report_interval": 60, "service_down_time": 300},
            "api": {"auth_strategy": "keystone"},
            "wsgi": {"api_paste_config": f"{d}/etc/nova/api-paste.ini"},
            "api_database": {"connection": self._db("nova_api"), "sqlite_synchronous": "False"},
            "database": {"connection": self._db("nova"), "sqlite_synchronous": "False"},
            "conductor": {"workers": 1},
            # The scheduler maps new compute hosts to the cell itself, every 2 s.
            "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": 2},
            "keystone_authtoken": self._authtoken(),
            "placement": self._service_auth(),
            "glance": {"api_servers": f"http://127.0.0.1:{p['glance']}"},
            "neutron": self._service_auth(),
            "oslo_concurrency": {"lock_path": f"{d}/nova/lock"},
            "oslo_policy": {**policy, "policy_file": f"{d}/etc/nova/policy.yaml",
                            "policy_dirs": f"{d}/etc/nova/policy.d"},
            "oslo_messaging_rabbit": {"heartbeat_timeout_threshold": 0},
            "vnc": {"enabled": "false"},
            "service_user": {"send_service_user_token": "false"},
            "quota": {"instances": -1, "cores": -1, "ram": -1},
            "libvirt": {"virt_type": "qemu"},
        }
        for section, items in self.nova_conf_extra.items():
            nova.setdefault(section, {}).update(items)
        self._write("etc/nova/nova.conf", _ini(nova))
        # See ROLE in the module's docstring.
        mine = "rule:project_member_or_admin or (role:%s and project_id:%%(project_id)s)" % ROLE
        # Glance's download_image wants `member`; a compute host that
        # fetches an image (libvirt; not the fake driver) does so with the
        # user's token.
        visible = ("project_id:%(project_id)s or 'public':%(visibility)s or 'community':%(visibility)s"
                   " or 'shared':%(visibility)s")
        self._write("etc/glance/policy.yaml", f'"download_image": "role:admin or (role:member and ({visible}))'
                    f" or (role:{ROLE} and (project_id:%(project_id)s or 'public':%(visibility)s))\"\n")
        self._write("etc/nova/policy.yaml", "".join(
            f'"os_compute_api:servers:{rule}": "{mine}"\n'
            for rule in ("create", "create:attach_network", "create:attach_volume", "delete")))
        # nova-api-wsgi reads api-paste.ini from its config directory.
        shutil.copy("/etc/nova/api-paste.ini", self.path("etc/nova/api-paste.ini"))
        self._write("etc/nova/uwsgi.ini", self._uwsgi(
            "nova-api", p["nova"], "/usr/bin/nova-api-wsgi", f"OS_NOVA_CONFIG_DIR={d}/etc/nova"))
        os.makedirs(self.path("rabbit"), exist_ok=True)
        self._write("rabbit/rabbitmq-env.conf",
                    'SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"\n')
        self._write("rabbit/enabled_plugins", "[].\n")
        self._write("rabbit/rabbitmq.conf", f"listeners.tcp.1 = 127.0.0.1:{p['amqp']}\nloopback_users.guest = true\n")


    def _rabbit_env(self):
        d, p = self.dir, self.ports
        return {"HOME": f"{d}/rabbit", "RABBITMQ_NODENAME": f"rabbit-{p['amqp']}@localhost",
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(p["amqp"]),
                "RABBITMQ_DIST_PORT": str(p["dist"]), "ERL_EPMD_ADDRESS": "127.0.0.1",
                "ERL_EPMD_PORT": str(p["epmd"]), "RABBITMQ_MNESIA_BASE": f"{d}/rabbit/mnesia",
                "RABBITMQ_LOG_BASE": f"{d}/rabbit/log", "RABBITMQ_PID_FILE": f"{d}/rabbit/rabbit.pid",
                "RABBITMQ_CONF_ENV_FILE": f"{d}/rabbit/rabbitmq-env.conf",
                "RABBITMQ_CONFIG_FILE": f"{d}/rabbit/rabbitmq",
                "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/rabbit/enabled_plugins",
                "RABBITMQ_ADVANCED_CONFIG_FILE": f"{d}/rabbit/advanced.config"}

    def _db(self, name):
        """A database URL. timeout: SQLite waits up to 60 s for another
        process's write lock (pysqlite's default, 5 s, is too short for
        four Nova services on two loaded CPUs: "database is locked", and a
        build or a delete fails half-way)."""
        return f"sqlite:///{self.dir}/{name}.db?timeout=60"

    def _wal(self, db):
        """SQLite in WAL mode, else the services see "database is locked"."""
        with sqlite3.connect(self.path(db + ".db")) as c:
            c.execute("PRAGMA journal_mode=WAL")
        c.close()
