"""Collecting figures over runs and printing the table."""
import statistics


class Results:
    """Each figure's value from every run."""

    def __init__(self):
        self.values = {}

    def add(self, key, value):
        self.values.setdefault(key, []).append(value)

    def last(self, kind):
        """The latest run's figures whose key names `kind`, for progress lines."""
        return ', '.join(f'{k} {fmt(v[-1])}' for k, v in self.values.items() if kind in k)

    def stat(self, key):
        v = self.values.get(key) if key else None
        if not v:
            return None
        return statistics.median(v), min(v), max(v)


def fmt(x):
    if x >= 100:
        return f'{x:.0f}'
    if x >= 10:
        return f'{x:.1f}'
    return f'{x:.2f}' if x >= 1 else f'{x:.3f}'


def cell(s, unit):
    if s is None:
        return '-'
    med, lo, hi = s
    return f'{fmt(med)} {unit} ({fmt(lo)}-{fmt(hi)})'


# Rows: label, Buildyard key, Buildbot key (None: no counterpart), unit, higher
# is better, target.
# Buildbot's workers are always remote, so its remote figures fill the local rows.
ROWS = [
    ('latency median, 8 local workers', 'latency_median_local', 'latency_median_remote', 'ms', False,
     '<= 2 ms, >= 50x lower'),
    ('latency p99, 8 local workers', 'latency_p99_local', 'latency_p99_remote', 'ms', False, ''),
    ('latency median, 8 remote workers', 'latency_median_remote', 'latency_median_remote', 'ms', False,
     '<= 2 ms, >= 50x lower'),
    ('latency p99, 8 remote workers', 'latency_p99_remote', 'latency_p99_remote', 'ms', False, ''),
    ('throughput, 8 local workers', 'throughput_local', 'throughput_remote', 'builds/s', True,
     '>= 500/s, >= 20x'),
    ('throughput, 8 remote workers', 'throughput_remote', 'throughput_remote', 'builds/s', True,
     '>= 500/s, >= 20x'),
    ('worker idle RSS, local', 'worker_rss_local', 'worker_rss_remote', 'MiB', False, '<= 4 MiB'),
    ('worker idle RSS, remote', 'worker_rss_remote', 'worker_rss_remote', 'MiB', False, '<= 4 MiB'),
    ('worker idle PSS, local', 'worker_pss_local', 'worker_pss_remote', 'MiB', False, ''),
    ('worker idle PSS, remote', 'worker_pss_remote', 'worker_pss_remote', 'MiB', False, ''),
    ('master RSS, 8 remote workers', 'master_rss_8', 'master_rss_8', 'MiB', False, ''),
    ('master RSS, {storm} remote workers', 'master_rss_storm', 'master_rss_storm', 'MiB', False,
     '<= 32 MiB (200)'),
    ('log throughput, local worker', 'log_local', 'log_remote', 'MB/s', True, '>= 200 MB/s'),
    ('log throughput, remote worker', 'log_remote', 'log_remote', 'MB/s', True, '>= 50 MB/s'),
    ('attach storm, {storm} remote workers', 'storm', 'storm', 's', False, ''),
    # The remote rows above run over TLS; these run the same over plain TCP
    # (`tls = no`), which Buildbot's PB has no counterpart for.
    ('latency median, 8 remote workers, plain TCP', 'latency_median_plain', None, 'ms', False,
     'TLS within 0.3 ms'),
    ('latency p99, 8 remote workers, plain TCP', 'latency_p99_plain', None, 'ms', False, ''),
    ('throughput, 8 remote workers, plain TCP', 'throughput_plain', None, 'builds/s', True, ''),
    ('worker idle RSS, remote, plain TCP', 'worker_rss_plain', None, 'MiB', False, ''),
    ('log throughput, remote worker, plain TCP', 'log_plain', None, 'MB/s', True, 'TLS >= 200 MB/s'),
]


def ratio(by, bb, higher_better):
    """Buildyard's median over Buildbot's, and what that means."""
    if by is None or bb is None or by[0] == 0 or bb[0] == 0:
        return '-'
    q = by[0] / bb[0]
    better = q >= 1 if higher_better else q <= 1
    factor = q if q >= 1 else 1 / q
    how = 'higher' if q >= 1 else 'lower'
    return f'{q:.3g} ({fmt(factor)}x {how}{"" if better else ", worse"})'


def table(by, bb):
    n_by, n_bb = by.stat('storm_workers'), bb.stat('storm_workers')
    storm = str(int(n_by[0])) if n_by else str(int(n_bb[0])) if n_bb else '?'
    if n_by and n_bb and n_by[0] != n_bb[0]:
        storm += f' (Buildbot: {int(n_bb[0])})'
    head = ['figure', 'Buildyard', 'Buildbot', 'Buildyard/Buildbot', 'target']
    rows = []
    for label, kby, kbb, unit, higher, target in ROWS:
        sby, sbb = by.stat(kby), bb.stat(kbb)
        rows.append([label.format(storm=storm), cell(sby, unit), cell(sbb, unit), ratio(sby, sbb, higher), target])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]

    def line(r):
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(r, widths)) + ' |'
    print(line(head))
    print('|' + '|'.join('-' * (w + 2) for w in widths) + '|')
    for r in rows:
        print(line(r))
