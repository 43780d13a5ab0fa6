"""A loopback TCP proxy that behaves like a satellite phone link (issue 16): rate, latency, loss, cuts.

Runs an asyncio loop in a thread, so a test or a bench in the same process can use it:

    with LinkShaper(target_port, kbps=64, rtt_ms=600, cut_every=30) as link:
        sync_once(..., hub_url=link.url)
        print(link.bytes_up, link.bytes_down)

- **rate**: each direction is one serial pipe shared by every connection (bytes leave one after
  another at ``kbps``), so parallel connections do not get more than the link;
- **latency**: every chunk arrives ``rtt_ms / 2`` after it left (delivery is pipelined, so the
  link's throughput is not capped by the round trip);
- **loss**: TCP hides loss as a retransmission, so a lost chunk arrives one round trip later
  (probability ``loss``);
- **cuts**: every ``cut_every`` seconds all open connections are aborted and the link refuses new
  ones for ``down_seconds`` (a satellite call dropping and being redialled).

Only 127.0.0.1 is ever connected to. Counters: bytes forwarded in each direction (TCP payload:
HTTP headers included), connections, cuts.
"""
from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

CHUNK = 512


class _Pipe:
    """One direction of the link: a serial line with a departure clock."""

    def __init__(self, bytes_per_second: float) -> None:
        self.rate = bytes_per_second
        self.free_at = 0.0

    def depart(self, nbytes: int) -> float:
        """When a chunk of ``nbytes`` finishes leaving (reserves the line until then)."""
        start = max(time.monotonic(), self.free_at)
        self.free_at = start + nbytes / self.rate if self.rate else start
        return self.free_at


class LinkShaper:
    def __init__(self, target_port: int, *, kbps: float = 64.0, rtt_ms: float = 600.0, loss: float = 0.0,
                 cut_every: float | None = None, down_seconds: float = 1.0, seed: int = 0) -> None:
        self.target_port = target_port
        self.one_way = rtt_ms / 2000.0
        self.loss = loss
        self.cut_every = cut_every
        self.down_seconds = down_seconds
        self.rng = random.Random(seed)
        self.up, self.down = _Pipe(kbps * 125.0), _Pipe(kbps * 125.0)
        self.bytes_up = self.bytes_down = self.connections = self.cuts = 0
        self.port = 0
        self._writers: set[Any] = set()
        self._down_until = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "LinkShaper":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("link shaper did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def reset_counters(self) -> None:
        self.bytes_up = self.bytes_down = 0

    # ---- inside the loop -----------------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        cutter = asyncio.create_task(self._cutter()) if self.cut_every else None
        self._ready.set()
        await self._stop.wait()
        if cutter:
            cutter.cancel()
        server.close()
        self._abort_all()

    def _abort_all(self) -> None:
        for w in list(self._writers):
            try:
                w.transport.abort()
            except Exception:  # noqa: BLE001 - already closed
                pass
        self._writers.clear()

    async def _cutter(self) -> None:
        while True:
            await asyncio.sleep(self.cut_every)  # type: ignore[arg-type]
            self.cuts += 1
            self._down_until = time.monotonic() + self.down_seconds
            self._abort_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._down_until:
            writer.transport.abort()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_w))
        try:
            await asyncio.gather(self._direction(reader, up_w, self.up, "up"),
                                 self._direction(up_r, writer, self.down, "down"), return_exceptions=True)
        except asyncio.CancelledError:
            pass
        for w in (writer, up_w):
            self._writers.discard(w)
            w.transport.abort()

    async def _direction(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, pipe: _Pipe, name: str) -> None:
        """Read, wait while the chunk crosses the line, hand it to a delivery queue (pipelined)."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliver = asyncio.create_task(self._deliver(queue, dst, name))
        try:
            while True:
                data = await src.read(CHUNK)
                if not data:
                    break
                left = pipe.depart(len(data))
                await asyncio.sleep(max(0.0, left - time.monotonic()))
                arrive = left + self.one_way
                if self.loss and self.rng.random() < self.loss:
                    arrive += 2 * self.one_way  # retransmitted one round trip later
                await queue.put((arrive, data))
        finally:
            await queue.put((0.0, b""))
            await deliver

    async def _deliver(self, queue: "asyncio.Queue[tuple[float, bytes]]", dst: asyncio.StreamWriter, name: str) -> None:
        last = 0.0
        while True:
            arrive, data = await queue.get()
            if not data:
                try:
                    dst.write_eof()
                except (OSError, RuntimeError):
                    pass
                return
            arrive = max(arrive, last)  # TCP delivers in order
            last = arrive
            await asyncio.sleep(max(0.0, arrive - time.monotonic()))
            try:
                dst.write(data)
                await dst.drain()
            except (OSError, RuntimeError, ConnectionError):
                return
            if name == "up":
                self.bytes_up += len(data)
            else:
                self.bytes_down += len(data)
