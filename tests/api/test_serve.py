"""`ktrdr-api serve` listens before it loads the app: a worker reconnecting during a restart
waits in the backlog instead of being refused; a port already taken is reported plainly."""

from __future__ import annotations

import socket

from ktrdr_api import cli


def test_the_listening_socket_accepts_connections_before_any_app_serves():
    server = cli.listen("127.0.0.1", 0)
    try:
        port = server.getsockname()[1]
        # Nothing has called accept(): the kernel queues the connection all the same.
        with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
            client.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            accepted, _ = server.accept()
            with accepted:
                assert accepted.recv(64).startswith(b"GET /api/v1/health")
    finally:
        server.close()


def test_serve_on_a_taken_port_says_so(monkeypatch, capsys, tmp_path):
    taken = cli.listen("127.0.0.1", 0)
    try:
        monkeypatch.setenv("KTRDR_HOME", str(tmp_path))
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--host", "127.0.0.1", "--port", str(port)]) == 2
    finally:
        taken.close()
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
