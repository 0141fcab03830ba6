"""Buildyard's side of bench/compare: a private dbus-daemon, buildyard-masterd
and buildyard-workerd processes; builds submitted with bench/dispatch-client."""
import os
import re
import shutil
import socket
import subprocess
import time

from comparelib.common import (SRC, BUILDER_WORKERS, Failed, Gate, attached_at, log_command, parse_latency,
                               parse_throughput, progress, rss_kib, run_client, wait_until, free_port)


class Buildyard:
    def __init__(self, args, procs):
        self.args = args
        self.procs = procs
        self.bin = os.path.join(args.build_dir, 'bin')

    def teardown(self):
        """Stops this run's processes; drops its directory (logs of 200 MB)
        unless --keep."""
        self.procs.stop()
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def check(self):
        for p in ('buildyard-masterd', 'buildyard-workerd', 'dispatch-client', 'stamp'):
            if not os.access(os.path.join(self.bin, p), os.X_OK):
                raise Failed(f'{self.bin}/{p} missing: cmake --build {self.args.build_dir}')

    def version(self):
        out = subprocess.run([os.path.join(self.bin, 'buildyard-masterd'), '--version'], capture_output=True,
                             text=True).stdout.strip()
        return out or 'buildyard-masterd (version unknown)'

    def client(self, *argv, timeout=3600):
        return run_client([os.path.join(self.bin, 'dispatch-client')] + list(argv), timeout, self.log, self.env)

    def setup(self, d, workers, remote, tls=True):
        """Bus and master with `workers` workers configured; returns when the
        master is READY (nothing attached yet). Remote workers speak TLS, or
        plain TCP (`tls = no` on both sides) with tls=False."""
        self.tls = tls
        os.makedirs(d)
        os.chmod(d, 0o755)
        self.dir = d
        self.log = os.path.join(d, 'clients.log')
        self.names = [f'w{i}' for i in range(1, workers + 1)]
        self.port = free_port() if remote else None
        with open(os.path.join(SRC, 'tests/lib/system-bus.conf.in')) as f:
            conf = f.read()
        conf = (conf.replace('@DIR@', d).replace('@POLICYDIR@', os.path.join(SRC, 'dbus'))
                .replace('@POLICY@', os.path.join(SRC, 'dbus/org.buildyard.Master1.conf')))
        with open(os.path.join(d, 'bus.conf'), 'w') as f:
            f.write(conf)
        self.bus = self.procs.start(['dbus-daemon', f'--config-file={d}/bus.conf', '--nofork', '--nopidfile'],
                                    os.path.join(d, 'dbus-daemon.log'))
        bus_path = os.path.join(d, 'bus')
        wait_until(lambda: os.path.exists(bus_path), 10, 'dbus-daemon', [self.bus])
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f'unix:path={bus_path}')
        self.env.pop('BUILDYARD_LOG_LEVEL', None)  # the default level, like Buildbot's
        with open(os.path.join(d, 'master.ini'), 'w') as f:
            listen = f'127.0.0.1:{self.port}' if remote else ''
            f.write(f'[master]\nname = bench\nlisten = {listen}\n')
            if not tls:
                f.write('tls = no\n')
            for n in self.names:
                f.write(f'[worker {n}]\nmax_builds = 2\n')
                f.write('password = pw\n' if remote else 'type = local\n')
            ws = ', '.join(self.names[:BUILDER_WORKERS])
            f.write(f'[builder latency]\nworkers = {ws}\nstep.1 = {self.bin}/stamp\n')
            f.write(f'[builder throughput]\nworkers = {ws}\nstep.1 = true\n')
            f.write(f'[builder log]\nworkers = {ws}\nstep.1 = {log_command(self.args.log_mb)}\n')
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify_path = os.path.join(d, 'notify')
        notify.bind(notify_path)
        try:
            self.master = self.procs.start(
                [os.path.join(self.bin, 'buildyard-masterd'), '--config', os.path.join(d, 'master.ini'),
                 '--state-directory', os.path.join(d, 'state')], os.path.join(d, 'master.log'),
                env=dict(self.env, NOTIFY_SOCKET=notify_path))
            notify.settimeout(0.1)

            def ready():
                try:
                    return b'READY=1' in notify.recv(4096)
                except socket.timeout:
                    return False
            wait_until(ready, 60, 'buildyard-masterd READY=1', [self.master])
        finally:
            notify.close()

    def fingerprint(self):
        """The master's TLS certificate, for the workers to pin."""
        out = subprocess.run(['openssl', 'x509', '-noout', '-fingerprint', '-sha256', '-in',
                              os.path.join(self.dir, 'state', 'tls-certificate.pem')],
                             capture_output=True, text=True, check=True).stdout
        return 'sha256:' + out.strip().split('=', 1)[1].replace(':', '').lower()

    def worker_argv(self, name):
        argv = [os.path.join(self.bin, 'buildyard-workerd'), '--name', name, '--basedir',
                os.path.join(self.dir, 'workers', name)]
        if self.port:
            conf = os.path.join(self.dir, 'workers', name + '.ini')
            os.makedirs(os.path.dirname(conf), exist_ok=True)
            with open(conf, 'w') as f:
                f.write(f'master = 127.0.0.1:{self.port}\npassword = pw\n')
                f.write(f'master_fingerprint = {self.fingerprint()}\n' if self.tls else 'tls = no\n')
            argv += ['--config', conf]
        return argv

    def watch_attached(self, n):
        p = self.procs.start([os.path.join(self.bin, 'dispatch-client'), 'attached', str(n)],
                             os.path.join(self.dir, 'attached.err'), env=self.env, pipe=True)
        line = p.stdout.readline().decode()
        if not line.startswith('watching'):
            raise Failed(f'dispatch-client attached: {line!r}; see {self.dir}/attached.err')
        return p

    def attached_at(self, p, timeout):
        return attached_at(p, timeout, 'workers', 'dispatch-client attached', f'{self.dir}/attached.err')

    def start_workers(self):
        watcher = self.watch_attached(len(self.names))
        self.workers = [self.procs.start(self.worker_argv(n), os.path.join(self.dir, n + '.log'), env=self.env)
                        for n in self.names]
        self.attached_at(watcher, 120)

    def workloads(self, r, kind):
        """The 8-worker run: memory, latency, throughput, log."""
        a = self.args
        time.sleep(1)  # measuring idle memory: let the just-attached processes settle
        r.add(f'worker_rss_{kind}', rss_kib(self.workers[0].pid)[0] / 1024)
        r.add(f'worker_pss_{kind}', rss_kib(self.workers[0].pid)[1] / 1024)
        if kind == 'remote':
            r.add('master_rss_8', rss_kib(self.master.pid)[0] / 1024)
        med, p99 = parse_latency(self.client('latency', 'latency', str(a.latency_builds)))
        r.add(f'latency_median_{kind}', med)
        r.add(f'latency_p99_{kind}', p99)
        r.add(f'throughput_{kind}', parse_throughput(self.client('throughput', 'throughput',
                                                                 str(a.throughput_builds))))
        out = self.client('log', 'log')
        m = re.search(r'build (\d+) finished in ([0-9.]+) s', out)
        if not m:
            raise Failed(f'dispatch-client log: {out!r}')
        size = os.path.getsize(os.path.join(self.dir, 'state', 'logs', m.group(1) + '.log'))
        if size < a.log_mb * 1000000:  # the master adds a line per step
            raise Failed(f'the log of build {m.group(1)} has {size} bytes, fewer than {a.log_mb * 1000000}')
        r.add(f'log_{kind}', a.log_mb / float(m.group(2)))

    def run(self, r, tmp, i):
        # 'plain': the remote workers again, over plain TCP, to show what TLS costs.
        for kind in ('local', 'remote', 'plain'):
            self.setup(os.path.join(tmp, f'buildyard-{kind}-{i}'), 8, kind != 'local', tls=kind != 'plain')
            self.start_workers()
            self.workloads(r, kind)
            self.teardown()
            progress(f'run {i} buildyard {kind}: ' + r.last(kind))
        n = self.args.storm_workers
        self.setup(os.path.join(tmp, f'buildyard-storm-{i}'), n, True)
        gate = Gate(os.path.join(self.dir, 'gate'))
        watcher = self.watch_attached(n)
        gated = [self.procs.start(gate.wrap(self.worker_argv(w)), os.path.join(self.dir, w + '.log'), env=self.env)
                 for w in self.names]
        gate.wait_blocked(gated)
        t0 = gate.release(n)
        r.add('storm', self.attached_at(watcher, 300) - t0)
        gate.close()
        time.sleep(1)  # settle before reading the master's memory
        r.add('master_rss_storm', rss_kib(self.master.pid)[0] / 1024)
        r.add('storm_workers', n)
        self.teardown()
        progress(f'run {i} buildyard storm: ' + r.last('storm'))
