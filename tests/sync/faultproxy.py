"""A small fault-injecting TCP proxy on 127.0.0.1 (threads), for shelter ⇄ hub tests.

Each accepted connection takes the next mode from ``schedule`` (then ``default``):

- ``pass``            forward both ways
- ``refuse``          close at once (connection reset before any byte)
- ``reset``           read the request, then abort with RST (SO_LINGER 0)
- ``delay:S``         wait S seconds before forwarding anything
- ``cut_response:N``  forward the request, then only N bytes of the reply, then close
                      (the hub has usually committed by then: reply lost mid-way)
- ``blackhole``       accept and read, never answer (client time-out), close after 5 s
"""
from __future__ import annotations

import socket
import struct
import threading
import time


class FaultProxy:
    def __init__(self, target_port: int, schedule: list[str] | None = None, default: str = "pass",
                 target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.schedule = list(schedule or [])
        self.default = default
        self.modes_used: list[str] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self._sock.close()
        self._thread.join(5)

    def _next_mode(self) -> str:
        with self._lock:
            mode = self.schedule.pop(0) if self.schedule else self.default
            self.modes_used.append(mode)
            return mode

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self._stop.is_set():
                client.close()
                return
            threading.Thread(target=self._handle, args=(client, self._next_mode()), daemon=True).start()

    @staticmethod
    def _rst(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        sock.close()

    def _handle(self, client: socket.socket, mode: str) -> None:
        if mode == "refuse":
            self._rst(client)
            return
        if mode == "reset":
            client.settimeout(2)
            try:
                client.recv(65536)
            except OSError:
                pass
            self._rst(client)
            return
        if mode == "blackhole":
            client.settimeout(5)
            end = time.time() + 5
            try:
                while time.time() < end and client.recv(65536):
                    pass
            except OSError:
                pass
            client.close()
            return
        if mode.startswith("delay:"):
            time.sleep(float(mode.split(":", 1)[1]))
        limit = int(mode.split(":", 1)[1]) if mode.startswith("cut_response:") else None
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            self._rst(client)
            return
        t = threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True)
        t.start()
        self._pipe(upstream, client, limit)
        for s in (client, upstream):
            try:
                s.close()
            except OSError:
                pass

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if limit is not None:
                src.close()
