"""Reach a server inside a container that has no network at all.

`--network-egress NONE` runs the model with Docker's `none` network: no route anywhere, not even
to the host. The checks still need to talk to it, so each TCP connection accepted on a local
port is carried over a `docker exec` stream into the container, where a few lines of Python
connect to the server on loopback. It works with remote engines too: everything goes through
the Docker API.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import docker
from docker.utils.socket import frames_iter

# Runs inside the container: pipe stdin to the server socket and the socket to stdout.
_PUMP = """
import os, socket, sys, threading
conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def upstream():
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while True:
    data = conn.recv(65536)
    if not data:
        break
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]
"""


class ExecForwarder:
    """A local listening port whose connections are tunnelled to `port` inside a container."""

    def __init__(self, client: docker.DockerClient, container_id: str, port: int) -> None:
        self.client = client
        self.container_id = container_id
        self.port = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.local_port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="cmkit-forward", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client_socket, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client_socket,), daemon=True).start()

    def _serve(self, client_socket: socket.socket) -> None:
        try:
            exec_id = self.client.api.exec_create(
                self.container_id, ["python3", "-c", _PUMP, str(self.port)], stdin=True, stdout=True, stderr=False
            )["Id"]
            tunnel = self.client.api.exec_start(exec_id, socket=True)
        except docker.errors.APIError:
            client_socket.close()
            return
        # The docker SDK hands back a SocketIO wrapping the connection: talk to the socket itself.
        raw: socket.socket = getattr(tunnel, "_sock", tunnel)  # type: ignore[arg-type]
        with self._lock:
            self._connections.update((client_socket, raw))
        threading.Thread(target=self._downstream, args=(tunnel, client_socket), daemon=True).start()
        try:
            while data := client_socket.recv(65536):
                raw.sendall(data)
            raw.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(client_socket, raw)

    def _downstream(self, tunnel: Any, client_socket: socket.socket) -> None:
        try:
            for _stream, data in frames_iter(tunnel, tty=False):  # type: ignore[no-untyped-call]
                client_socket.sendall(data)
        except OSError:
            pass
        finally:
            self._close(client_socket, getattr(tunnel, "_sock", tunnel))

    def _close(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            # shutdown() first: close() alone neither wakes a recv() blocked in another thread
            # nor tells the peer, so the client would wait for its timeout.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
            with self._lock:
                self._connections.discard(sock)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            open_sockets = list(self._connections)
        self._close(*open_sockets)
