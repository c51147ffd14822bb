"""A TCP forwarder on 127.0.0.1 that cuts a connection at a chosen moment, like a database restart.

    with CuttingProxy("127.0.0.1", 5432) as proxy:
        url = url.set(host="127.0.0.1", port=proxy.port)
        proxy.cut_on(b"COMMIT", after_reply=True)    # the server commits; the client never hears it
"""

from __future__ import annotations

import socket
import threading


class CuttingProxy:
    """Forward 127.0.0.1:port to a server; cut the one connection that sends `marker`, once."""

    def __init__(self, host: str, port: int):
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self._after_reply = False
        self._pending: set[int] = set()  # connections whose next reply is swallowed
        self._sockets: list[socket.socket] = []
        self.cut = threading.Event()

    def __enter__(self) -> CuttingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def cut_on(self, marker: bytes, *, after_reply: bool) -> None:
        """Arm one cut: at the next client message holding marker, before or after the server answers."""
        with self._lock:
            self._marker, self._after_reply = marker, after_reply
            self.cut.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump_up, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(server, client), daemon=True).start()

    def _pump_up(self, client: socket.socket, server: socket.socket) -> None:
        while data := _recv(client):
            with self._lock:
                hit = self._marker is not None and self._marker in data
                if hit:
                    self._marker = None
                    if self._after_reply:
                        self._pending.add(id(server))
            if hit and not self._after_reply:
                self._cut(client, server)
                return
            try:
                server.sendall(data)
            except OSError:
                return
        _close(server)

    def _pump_down(self, server: socket.socket, client: socket.socket) -> None:
        while data := _recv(server):
            with self._lock:
                swallow = id(server) in self._pending
                self._pending.discard(id(server))
            if swallow:
                self._cut(client, server)
                return
            try:
                client.sendall(data)
            except OSError:
                return
        _close(client)

    def _cut(self, client: socket.socket, server: socket.socket) -> None:
        _close(client)
        _close(server)
        self.cut.set()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
