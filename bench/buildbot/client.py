#!/usr/bin/python3
"""The Buildbot half of bench/compare: submits builds to a Buildbot master
through its own API and measures, like dispatch-client does for Buildyard.

  client.py --master HOST:PORT --events SOCKET --db STATE.SQLITE MODE ...
    latency COUNT     one build at a time of builder `latency`, whose step
                      runs bench `stamp`; latency = the stamp read back from
                      the build's log - the time just before addChange
    throughput COUNT  COUNT builds of `true` submitted at once, alternating
                      throughput-1 and throughput-2; builds/s to completion
    log LINES         one build of builder `log`; seconds until it finished;
                      fails unless its stdio log holds at least LINES lines
    attach COUNT      prints the time when COUNT workers have connected

Builds are submitted as changes over Perspective Broker to PBChangeSource:
the protocol and the credentials of `buildbot sendchange`, but one login
kept for all changes instead of one process and one login per change. The
master's bench-events service (master.cfg) reports finished builds and
connected workers on the unix socket SOCKET.
"""
import argparse
import os
import re
import sqlite3
import statistics
import sys
import time
import zlib

from twisted.cred import credentials
from twisted.internet import defer, protocol, reactor
from twisted.protocols.basic import LineReceiver
from twisted.spread import pb


class Events:
    def __init__(self):
        self.finished = []       # (buildid, results) in arrival order
        self.connected = set()
        self.waiters = []        # (predicate, deferred)
        self.last = time.monotonic()  # when the latest event came

    def add(self, line):
        parts = line.split()
        if parts[0] == 'finished':
            self.finished.append((int(parts[1]), int(parts[3])))
        elif parts[0] == 'connected':
            self.connected.add(parts[1])
        self.last = time.monotonic()
        for w in list(self.waiters):
            if w[0]():
                self.waiters.remove(w)
                w[1].callback(None)

    def wait(self, predicate, idle, total=6 * 3600):
        """Fires when predicate() holds; fails after `idle` seconds without
        any event, or after `total` seconds."""
        if predicate():
            return defer.succeed(None)
        d = defer.Deferred()
        entry = (predicate, d)
        self.waiters.append(entry)
        start = self.last = time.monotonic()
        state = {}

        def check():
            if entry not in self.waiters:
                return
            now = time.monotonic()
            if now - self.last > idle or now - start > total:
                self.waiters.remove(entry)
                d.errback(TimeoutError(f'no progress for {idle} s' if now - start <= total
                                       else f'not done within {total} s'))
                return
            state['call'] = reactor.callLater(min(idle, 5), check)
        state['call'] = reactor.callLater(min(idle, 5), check)
        d.addBoth(lambda r: (state['call'].active() and state['call'].cancel(), r)[1])
        return d


class EventLine(LineReceiver):
    delimiter = b'\n'

    def lineReceived(self, line):
        self.factory.events.add(line.decode())


def stamp_of(db, buildid):
    """The STAMP the latency step printed, from the build's stdio log."""
    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True, timeout=10)
    try:
        rows = con.execute(
            'SELECT lc.content, lc.compressed FROM logchunks lc JOIN logs l ON lc.logid = l.id '
            'JOIN steps s ON l.stepid = s.id WHERE s.buildid = ?', (buildid,)).fetchall()
    finally:
        con.close()
    for content, compressed in rows:
        if compressed == 1:
            content = zlib.decompress(content)
        elif compressed != 0:
            raise RuntimeError(f'log chunk compressed with method {compressed}')
        if isinstance(content, bytes):
            content = content.decode('utf-8', 'replace')
        m = re.search(r'STAMP (\d+)', content)
        if m:
            return int(m.group(1))
    raise RuntimeError(f'no STAMP in the log of build {buildid}')


def stored_lines(db, buildid):
    con = sqlite3.connect(f'file:{db}?mode=ro', uri=True, timeout=10)
    try:
        return con.execute('SELECT SUM(l.num_lines) FROM logs l JOIN steps s ON l.stepid = s.id '
                           'WHERE s.buildid = ?', (buildid,)).fetchone()[0] or 0
    finally:
        con.close()


def change(category, n):
    return {'project': '', 'repository': '', 'who': 'bench', 'files': [], 'comments': 'bench',
            'branch': None, 'revision': str(n), 'category': category, 'when': None,
            'properties': {}, 'revlink': '', 'src': None}


def percentile(v, p):
    v = sorted(v)
    return v[min(int(p * (len(v) - 1) + 0.5), len(v) - 1)]


def check(events, first, count):
    bad = [b for b, r in events.finished[first:first + count] if r != 0]
    if bad:
        raise RuntimeError(f'{len(bad)} builds did not succeed, e.g. build {bad[0]}')


@defer.inlineCallbacks
def run(args, events):
    if args.mode == 'attach':
        yield events.wait(lambda: len(events.connected) >= args.count, 600)
        print(f'attached {args.count} at {time.time():.6f}', flush=True)
        return
    host, port = args.master.rsplit(':', 1)
    factory = pb.PBClientFactory()
    reactor.connectTCP(host, int(port), factory)
    remote = yield factory.login(credentials.UsernamePassword(b'change', b'changepw'))
    if args.mode == 'latency':
        ms = []
        for i in range(args.count):
            n = len(events.finished)
            t0 = time.time()
            yield remote.callRemote('addChange', change('latency', i))
            yield events.wait(lambda: len(events.finished) > n, 60)
            check(events, n, 1)
            ms.append((stamp_of(args.db, events.finished[n][0]) - t0 * 1e6) / 1000.0)
        print(f'latency submit->step start over {args.count} builds: median {statistics.median(ms):.3f} ms, '
              f'p99 {percentile(ms, 0.99):.3f} ms, min {min(ms):.3f} ms, max {max(ms):.3f} ms')
    elif args.mode == 'throughput':
        n = len(events.finished)
        t0 = time.monotonic()
        calls = [remote.callRemote('addChange', change(f'throughput-{1 + i % 2}', i)) for i in range(args.count)]
        yield defer.gatherResults(calls, consumeErrors=True)
        yield events.wait(lambda: len(events.finished) >= n + args.count, 600)
        secs = time.monotonic() - t0
        check(events, n, args.count)
        print(f'throughput: {args.count} builds of `true` submitted at once finished in {secs:.3f} s: '
              f'{args.count / secs:.1f} builds/s')
    elif args.mode == 'log':
        n = len(events.finished)
        t0 = time.monotonic()
        yield remote.callRemote('addChange', change('log', 0))
        yield events.wait(lambda: len(events.finished) > n, 3600)
        secs = time.monotonic() - t0
        check(events, n, 1)
        buildid = events.finished[n][0]
        lines = stored_lines(args.db, buildid)
        if lines < args.count:
            raise RuntimeError(f'the log of build {buildid} has {lines} lines, not {args.count}')
        print(f'log: build {buildid} finished in {secs:.3f} s, {lines} lines stored')
    remote.broker.transport.loseConnection()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--master', default='127.0.0.1:9989')
    p.add_argument('--events', required=True)
    p.add_argument('--db')
    p.add_argument('mode', choices=['latency', 'throughput', 'log', 'attach'])
    p.add_argument('count', nargs='?', type=int, default=1)
    args = p.parse_args()

    events = Events()
    f = protocol.Factory.forProtocol(EventLine)
    f.events = events
    if os.path.exists(args.events):
        os.unlink(args.events)  # the previous client's
    reactor.listenUNIX(args.events, f)
    print('listening', flush=True)
    status = []

    def done(result):
        if isinstance(result, Exception) or hasattr(result, 'value'):
            err = getattr(result, 'value', result)
            print(f'client.py {args.mode}: {err}', file=sys.stderr)
            status.append(1)
        reactor.stop()
    reactor.callWhenRunning(lambda: run(args, events).addBoth(done))
    reactor.run()
    sys.exit(status[0] if status else 0)


if __name__ == '__main__':
    main()
