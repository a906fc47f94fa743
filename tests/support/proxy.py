"""A TCP relay between a worker and the backend that can hold one transfer mid-way, for the
drills."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading


class GatedProxy:
    """A TCP relay in front of the API whose one-shot gate holds a single transfer part-way
    until the test lets it go: a phase (data download, result upload) stays in progress for as
    long as the test needs, whatever the machine's speed.

    ``gate(direction, match=..., after_bytes=N)``: the first connection whose bytes toward the
    API contain ``match`` (a request line, say) is marked; on that connection the pump in
    ``direction`` ("up": toward the API, counted from the end of ``match``; "down": toward the
    worker, counted from the request) relays ``after_bytes`` bytes, then blocks. ``held`` is
    set when it blocks; ``release()`` lets everything through, ``release(n)`` ``n`` more bytes
    (``held`` is cleared, and set again when those are spent). Only that connection waits: the
    worker's other connections (its heartbeats) go on. ``moved_on_gated`` counts the bytes let
    through on the marked connection in ``direction`` from where ``after_bytes`` counts;
    ``moved`` counts all bytes relayed each way. No byte rates: a test holds a phase, it never
    slows it down and hopes."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.moved = {"down": 0, "up": 0}
        self.moved_on_gated = 0
        self.held = threading.Event()
        self._cond = threading.Condition()
        self._gate: _Gate | None = None
        self._ids = itertools.count(1)
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    # --- the gate -------------------------------------------------------------------------

    def gate(self, direction: str, *, match: bytes, after_bytes: int = 0) -> None:
        """Arm a one-shot gate (replacing an earlier one): see the class docstring."""
        if direction not in ("up", "down"):
            raise ValueError(f"direction is 'up' or 'down', not {direction!r}")
        with self._cond:
            if self._gate is not None:
                self._gate.open = True  # whatever the old gate still holds goes on
            self._gate = _Gate(direction, match, after_bytes)
            self.moved_on_gated = 0
            self.held.clear()
            self._cond.notify_all()

    def release(self, budget: int | None = None) -> None:
        """Let the held transfer go on: all of it (``budget`` None) or ``budget`` more bytes."""
        with self._cond:
            if self._gate is None:
                return
            if budget is None:
                self._gate.open = True
            else:
                self._gate.left += budget
            self.held.clear()
            self._cond.notify_all()

    # --- relaying -------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()  # the API is down: the worker sees a refused connection
                continue
            with self._cond:
                self._sockets += [client, server]
            conn = next(self._ids)
            threading.Thread(
                target=self._pump, args=(conn, client, server, "up"), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(conn, server, client, "down"), daemon=True
            ).start()

    def _pump(self, conn: int, source: socket.socket, sink: socket.socket, direction: str) -> None:
        tail = b""  # the last bytes seen toward the API, so a match may span two reads
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                free = 0  # bytes of ``data`` that pass whatever the gate says (up to a match)
                if direction == "up":
                    with self._cond:
                        gate = self._gate
                        if gate is not None and gate.conn is None:
                            seen = tail + data
                            at = seen.find(gate.match)
                            if at >= 0:
                                gate.conn = conn  # marked before the request reaches the API
                                free = max(0, at + len(gate.match) - len(tail))
                            else:
                                keep = len(gate.match) - 1
                                tail = seen[max(0, len(seen) - keep) :] if keep else b""
                self._relay(conn, direction, data[:free], sink, gated=False)
                self._relay(conn, direction, data[free:], sink, gated=True)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def _relay(self, conn: int, direction: str, data: bytes, sink: socket.socket,
               *, gated: bool) -> None:  # fmt: skip
        while data:
            with self._cond:
                gate = self._gate
                ours = gate is not None and gate.conn == conn and gate.direction == direction
                allowed = len(data)
                if ours and gated:
                    while not gate.open and gate.left <= 0 and not self._closed:
                        self.held.set()
                        self._cond.wait()
                    if self._closed:
                        raise OSError("proxy closed")
                    if not gate.open:
                        allowed = min(allowed, gate.left)
                        gate.left -= allowed
                # Counted as they are let through, so a reader never sees them first.
                self.moved[direction] += allowed
                if ours and gated:
                    self.moved_on_gated += allowed
            sink.sendall(data[:allowed])
            data = data[allowed:]

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._cond:
            self._cond.notify_all()
            for sock in self._sockets:
                sock.close()


class _Gate:
    def __init__(self, direction: str, match: bytes, after_bytes: int):
        self.direction = direction
        self.match = match
        self.left = after_bytes  # bytes still let through before the hold
        self.open = False  # released for good
        self.conn: int | None = None  # the marked connection
