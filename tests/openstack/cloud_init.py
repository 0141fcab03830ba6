"""The part of a server's boot that Nova's fake virt driver does not play:
cloud-init running buildyard-workerd --latent. Shared by the OpenStack
backend's tests and bench/latent-openstack."""

import os
import signal
import subprocess
import threading


class CloudInit:
    """Starts the worker each ACTIVE server of `owner` would run, from the
    user data Nova holds for it (read as admin from `cloud`, the fixture),
    on a config drive; kills it when Nova lists the server no more, or
    deletes it."""

    def __init__(self, cloud, dir, owner, workerd, start_workers=True):
        self.cloud = cloud
        self.workerd = workerd
        self.dir = dir
        self.owner = owner
        self.start_workers = start_workers
        self.workers = {}  # server id -> Popen
        self.user_data = {}  # server id -> text
        self.stopping = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(30)
        for server_id in list(self.workers):
            self.kill(server_id)

    def run(self):
        while not self.stopping.wait(0.3):
            try:
                self.step()
            except Exception as e:  # noqa: BLE001 - reported by the test that reads it
                self.error = repr(e)

    def step(self):
        live = {s["id"]: s for s in self.cloud.servers()
                if s["metadata"].get("buildyard:owner") == self.owner and s["status"] != "DELETED"}
        for server_id, s in live.items():
            if s["status"] == "ACTIVE" and server_id not in self.workers and self.start_workers:
                self.boot(server_id)
        for server_id in list(self.workers):
            if server_id not in live or live[server_id].get("OS-EXT-STS:task_state") == "deleting":
                self.kill(server_id)

    def boot(self, server_id):
        text = self.cloud.user_data(server_id).decode()
        self.user_data[server_id] = text
        drive = os.path.join(self.dir, "drives", server_id)
        os.makedirs(os.path.join(drive, "openstack", "latest"), exist_ok=True)
        with open(os.path.join(drive, "openstack", "latest", "user_data"), "w") as f:
            f.write(text)
        basedir = os.path.join(self.dir, "servers", server_id)
        os.makedirs(basedir, exist_ok=True)
        env = dict(os.environ)
        for k in ("BUILDYARD_WORKER_NAME", "BUILDYARD_MASTER", "BUILDYARD_TOKEN", "CREDENTIALS_DIRECTORY"):
            env.pop(k, None)
        with open(os.path.join(self.dir, f"worker-{server_id}.log"), "wb") as log:
            self.workers[server_id] = subprocess.Popen(
                [self.workerd, "--latent", "--basedir", basedir,
                 "--metadata", "config-drive", "--metadata-url", drive],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def kill(self, server_id):
        p = self.workers.pop(server_id)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)

    def worker_log(self, server_id):
        with open(os.path.join(self.dir, f"worker-{server_id}.log"), errors="replace") as f:
            return f.read()
