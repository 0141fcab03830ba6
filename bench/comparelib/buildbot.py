"""Buildbot's side of bench/compare: Debian's buildbot and buildbot-worker,
the master of bench/buildbot/master.cfg, builds submitted with
bench/buildbot/client.py."""
import json
import os
import re
import shutil
import subprocess
import time

from comparelib.common import (SRC, BUILDER_WORKERS, LOG_LINE, MiB, Failed, Gate, attached_at, log_command,
                               parse_latency, parse_throughput, progress, rss_kib, run_client, wait_until, free_port)


class Buildbot:
    def __init__(self, args, procs):
        self.args = args
        self.procs = procs
        self.bin = os.path.join(args.build_dir, 'bin')
        self.client_py = os.path.join(SRC, 'bench', 'buildbot', 'client.py')

    def teardown(self):
        """Stops this run's processes; drops its directory (logs of 200 MB)
        unless --keep."""
        self.procs.stop()
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def check(self):
        missing = [p for p in ('buildbot', 'buildbot-worker') if not shutil.which(p)]
        if missing:
            raise Failed(f'{" and ".join(missing)} not installed: '
                         'apt-get install -y --no-install-recommends buildbot buildbot-worker')

    def version(self):
        out = subprocess.run(['buildbot', '--version'], capture_output=True, text=True).stdout
        return ', '.join(line.strip() for line in out.splitlines() if line.strip())

    def templates(self, tmp):
        """One master made by `buildbot create-master` and one worker made by
        `buildbot-worker create-worker`; each run copies them (a copy of a
        fresh master is a fresh master, without create-master's 5 s)."""
        self.template = os.path.join(tmp, 'buildbot-template')
        os.makedirs(self.template)
        subprocess.run(['buildbot', 'create-master', '--relocatable', os.path.join(self.template, 'master')],
                       check=True, capture_output=True)
        shutil.copy(os.path.join(SRC, 'bench', 'buildbot', 'master.cfg'),
                    os.path.join(self.template, 'master', 'master.cfg'))
        subprocess.run(['buildbot-worker', 'create-worker', '--relocatable',
                        os.path.join(self.template, 'worker'), '127.0.0.1:1', 'NAME', 'pw'],
                       check=True, capture_output=True)
        with open(os.path.join(self.template, 'worker', 'buildbot.tac')) as f:
            self.tac = f.read()

    def setup(self, d, workers):
        os.makedirs(d)
        self.dir = d
        self.log = os.path.join(d, 'clients.log')
        self.port = free_port()
        self.names = [f'w{i}' for i in range(1, workers + 1)]
        self.events = os.path.join(d, 'events.sock')
        mdir = os.path.join(d, 'master')
        shutil.copytree(os.path.join(self.template, 'master'), mdir)
        with open(os.path.join(mdir, 'bench.json'), 'w') as f:
            json.dump({'workers': workers, 'builder_workers': BUILDER_WORKERS, 'max_builds': 2, 'port': self.port,
                       'events': self.events, 'stamp': os.path.join(self.bin, 'stamp'),
                       'log_command': log_command(self.args.log_mb)}, f)
        self.db = os.path.join(mdir, 'state.sqlite')
        self.master = self.procs.start(['buildbot', 'start', '--nodaemon', mdir], os.path.join(d, 'master.out'))
        twistd_log = os.path.join(mdir, 'twistd.log')

        def running():
            try:
                with open(twistd_log, errors='replace') as f:
                    text = f.read()
            except OSError:
                return False
            if 'BuildMaster startup failed' in text or 'Configuration Errors' in text:
                raise Failed(f'the Buildbot master did not start; see {twistd_log}')
            return 'BuildMaster is running' in text
        wait_until(running, 120, 'Buildbot master start', [self.master])

    def worker_argv(self, name):
        wdir = os.path.join(self.dir, 'workers', name)
        os.makedirs(os.path.join(wdir, 'info'))
        for info in ('admin', 'host'):
            shutil.copy(os.path.join(self.template, 'worker', 'info', info), os.path.join(wdir, 'info', info))
        with open(os.path.join(wdir, 'buildbot.tac'), 'w') as f:
            f.write(self.tac.replace('\nport = 1\n', f'\nport = {self.port}\n')
                    .replace("workername = 'NAME'", f"workername = '{name}'"))
        return ['buildbot-worker', 'start', '--nodaemon', wdir]

    def client(self, *argv, timeout=7 * 3600, background=False):
        cmd = ['/usr/bin/python3', self.client_py, '--master', f'127.0.0.1:{self.port}', '--events', self.events,
               '--db', self.db] + list(argv)
        if background:
            p = self.procs.start(cmd, os.path.join(self.dir, 'attach.err'), pipe=True)
            line = p.stdout.readline().decode()
            if not line.startswith('listening'):
                raise Failed(f'client.py attach: {line!r}; see {self.dir}/attach.err')
            return p
        return run_client(cmd, timeout, self.log)

    def attached_at(self, p, timeout):
        return attached_at(p, timeout, 'Buildbot workers', 'client.py attach', f'{self.dir}/attach.err')

    def run(self, r, tmp, i):
        a = self.args
        self.setup(os.path.join(tmp, f'buildbot-{i}'), 8)
        watcher = self.client('attach', '8', background=True)
        workers = [self.procs.start(self.worker_argv(n), os.path.join(self.dir, n + '.log')) for n in self.names]
        self.attached_at(watcher, 300)
        time.sleep(1)  # as for Buildyard: let the just-attached processes settle
        r.add('worker_rss_remote', rss_kib(workers[0].pid)[0] / 1024)
        r.add('worker_pss_remote', rss_kib(workers[0].pid)[1] / 1024)
        r.add('master_rss_8', rss_kib(self.master.pid)[0] / 1024)
        progress(f'run {i} buildbot: 8 workers attached; {a.latency_builds} builds one at a time')
        med, p99 = parse_latency(self.client('latency', str(a.latency_builds)))
        r.add('latency_median_remote', med)
        r.add('latency_p99_remote', p99)
        progress(f'run {i} buildbot: {a.throughput_builds} builds at once')
        r.add('throughput_remote', parse_throughput(self.client('throughput', str(a.throughput_builds))))
        progress(f'run {i} buildbot: a log of {a.log_mb} MB')
        out = self.client('log', str(a.log_mb * 1000000 // (len(LOG_LINE) + 1)))
        m = re.search(r'finished in ([0-9.]+) s', out)
        if not m:
            raise Failed(f'client.py log: {out!r}')
        r.add('log_remote', a.log_mb / float(m.group(1)))
        self.teardown()
        progress(f'run {i} buildbot: ' + r.last('remote'))

        n = storm_size(a.storm_workers)
        progress(f'run {i} buildbot: {n} workers attaching to a fresh master')
        self.setup(os.path.join(tmp, f'buildbot-storm-{i}'), n)
        gate = Gate(os.path.join(self.dir, 'gate'))
        watcher = self.client('attach', str(n), background=True)
        gated = [self.procs.start(gate.wrap(self.worker_argv(w)), os.path.join(self.dir, w + '.log'))
                 for w in self.names]
        gate.wait_blocked(gated)
        t0 = gate.release(n)
        r.add('storm', self.attached_at(watcher, 1800) - t0)
        gate.close()
        time.sleep(1)
        r.add('master_rss_storm', rss_kib(self.master.pid)[0] / 1024)
        r.add('storm_workers', n)
        self.teardown()
        progress(f'run {i} buildbot storm: ' + r.last('storm'))


def storm_size(wanted):
    """Buildbot workers are Python processes of ~50 MB each: start no more
    than leave 4 GiB of this machine's available memory free."""
    with open('/proc/meminfo') as f:
        avail = next(int(line.split()[1]) for line in f if line.startswith('MemAvailable:')) * 1024
    fit = int((avail - 4 * 1024 * MiB) // (64 * MiB))
    return max(1, min(wanted, fit))
