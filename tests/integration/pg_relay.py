"""PgRelay: a network fault between the masters and the test's PostgreSQL
server. It listens where libpq looks for a server's socket
(DIRECTORY/.s.PGSQL.PORT) and passes every byte to the real server and
back, except that, once armed with lose_answers_after(marker), the first
connection on which a client sends `marker` (say the name of a prepared
statement, which its Bind message carries) gets no more answers: what it
sent still reaches the server, which runs and commits it, and what the
server says back is dropped. That is a commit whose answer never came;
the client waits until its own deadline."""

import os
import selectors
import socket
import threading


class PgRelay:
    def __init__(self, directory, server_directory, port):
        os.makedirs(directory, mode=0o755, exist_ok=True)
        self.directory = directory
        self.server = os.path.join(server_directory, f".s.PGSQL.{port}")
        path = os.path.join(directory, f".s.PGSQL.{port}")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        os.chmod(path, 0o777)  # as the server's own socket: any local user connects
        self.listener.listen(16)
        self.lock = threading.Lock()
        self.marker = None
        self.muted = 0  # connections that lost their answers
        self.stop_r, self.stop_w = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def lose_answers_after(self, marker):
        with self.lock:
            self.marker = marker

    def close(self):
        os.write(self.stop_w, b"x")
        self.thread.join(10)
        for fd in (self.stop_r, self.stop_w):
            os.close(fd)
        self.listener.close()

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.stop_r, selectors.EVENT_READ, "stop")
        sel.register(self.listener, selectors.EVENT_READ, "accept")
        # For each socket: [its peer, whether it is the client's end, the
        # connection's state {"muted": bool, "tail": bytes}].
        ends = {}
        while True:
            for key, _ in sel.select(timeout=60):
                if key.data == "stop":
                    for s in ends:
                        s.close()
                    sel.close()
                    return
                if key.data == "accept":
                    try:
                        client, _ = self.listener.accept()
                    except OSError:
                        continue
                    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    try:
                        server.connect(self.server)
                    except OSError:
                        client.close()  # the client sees the server as gone
                        server.close()
                        continue
                    state = {"muted": False, "tail": b""}
                    ends[client] = [server, True, state]
                    ends[server] = [client, False, state]
                    sel.register(client, selectors.EVENT_READ, "pass")
                    sel.register(server, selectors.EVENT_READ, "pass")
                    continue
                sock = key.fileobj
                if sock not in ends:
                    continue  # closed earlier in this round
                peer, from_client, state = ends[sock]
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data and from_client:
                    with self.lock:
                        seen = state["tail"] + data
                        if self.marker and self.marker in seen:
                            self.marker = None
                            self.muted += 1
                            state["muted"] = True
                        state["tail"] = seen[-64:]
                try:
                    if data and not (state["muted"] and not from_client):
                        peer.sendall(data)
                except OSError:
                    data = b""
                if not data:
                    for s in (sock, peer):
                        sel.unregister(s)
                        s.close()
                        del ends[s]
