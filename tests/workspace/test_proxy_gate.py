"""The drills' relay (tests/support/proxy.py): its gate holds one connection's transfer after
exactly the bytes it was told, lets the other connections through meanwhile, and lets go by
the byte or all at once — what the drills rely on to hold a phase instead of racing it."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.support.proxy import GatedProxy
from tests.support.waiting import wait_until

BODY = bytes(range(256)) * 64  # 16 KiB


class _Server:
    """A loopback TCP server: keeps what each connection sent; answers ``reply`` once the
    first bytes arrive."""

    def __init__(self, reply: bytes = b""):
        self.reply = reply
        self.received: list[bytearray] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            got = bytearray()
            self.received.append(got)
            threading.Thread(target=self._serve, args=(conn, got), daemon=True).start()

    def _serve(self, conn: socket.socket, got: bytearray) -> None:
        replied = False
        with conn:
            while data := conn.recv(65536):
                got += data
                if self.reply and not replied:
                    replied = True
                    conn.sendall(self.reply)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def relay():
    made = []

    def make(reply: bytes = b"") -> tuple[_Server, GatedProxy]:
        server = _Server(reply)
        proxy = GatedProxy(server.port)
        made.append((server, proxy))
        return server, proxy

    yield make
    for server, proxy in made:
        proxy.release()
        proxy.close()
        server.close()


def _connect(proxy: GatedProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    return sock


def test_an_upload_is_held_after_its_bytes_and_other_connections_go_on(relay):
    server, proxy = relay()
    head = b"POST /api/v1/artifacts?kind=bundle HTTP/1.1\r\n"
    proxy.gate("up", match=b"?kind=bundle HTTP/1.1\r\n", after_bytes=100)
    upload = _connect(proxy)
    # The match split across two sends still marks the connection.
    upload.sendall(head[:30])
    wait_until(lambda: server.received and len(server.received[0]) == 30, "the first piece")
    upload.sendall(head[30:] + BODY)
    wait_until(proxy.held.is_set, "the hold")
    wait_until(lambda: len(server.received[0]) >= len(head) + 100, "the bytes before the hold")
    assert bytes(server.received[0]) == head + BODY[:100]
    # Another connection (a heartbeat) is not held.
    beat = _connect(proxy)
    beat.sendall(b"POST /api/v1/workers/w/heartbeat HTTP/1.1\r\n" + BODY)
    wait_until(lambda: len(server.received) == 2 and len(server.received[1]) > len(BODY),
               "the other connection's bytes")  # fmt: skip
    assert len(server.received[0]) == len(head) + 100  # still held
    # n more bytes, then held again.
    proxy.release(50)
    wait_until(proxy.held.is_set, "the hold after the budget")
    wait_until(lambda: len(server.received[0]) >= len(head) + 150, "the budget's bytes")
    assert bytes(server.received[0]) == head + BODY[:150]
    assert proxy.moved_on_gated == 150
    proxy.release()
    wait_until(lambda: len(server.received[0]) == len(head) + len(BODY), "the rest")
    assert bytes(server.received[0]) == head + BODY
    for sock in (upload, beat):
        sock.close()


def test_a_download_is_held_after_its_bytes(relay):
    _, proxy = relay(reply=BODY)
    proxy.gate("down", match=b"GET /api/v1/artifacts/abc", after_bytes=1000)
    other = _connect(proxy)
    other.sendall(b"GET /api/v1/artifacts/zzz HTTP/1.1\r\n\r\n")
    download = _connect(proxy)
    download.sendall(b"GET /api/v1/artifacts/abc HTTP/1.1\r\n\r\n")
    wait_until(proxy.held.is_set, "the hold")

    def read(sock: socket.socket, count: int) -> bytes:
        got = b""
        while len(got) < count:
            got += sock.recv(count - len(got))
        return got

    assert read(download, 1000) == BODY[:1000]
    assert read(other, len(BODY)) == BODY  # the unmarked connection is not held
    download.settimeout(0.2)
    with pytest.raises(TimeoutError):
        download.recv(1)  # nothing past the hold
    download.settimeout(10)
    proxy.release(24)
    assert read(download, 24) == BODY[1000:1024]
    assert proxy.moved_on_gated == 1024
    proxy.release()
    assert read(download, len(BODY) - 1024) == BODY[1024:]
    for sock in (download, other):
        sock.close()


def test_a_gate_names_a_direction():
    with pytest.raises(ValueError, match="direction"):
        GatedProxy.gate(object.__new__(GatedProxy), "sideways", match=b"x")
