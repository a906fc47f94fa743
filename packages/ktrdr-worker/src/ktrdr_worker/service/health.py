"""``GET /health``: a tiny HTTP endpoint for container health checks (stdlib only).

Answers 200 with the worker's status as JSON (idle / busy / reconnecting, the operation it
runs and its progress) while the worker loop is alive, 503 once it has stopped. Runs in a
daemon thread; any other path is 404.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HealthServer"]

log = logging.getLogger("ktrdr_worker.service")


class HealthServer:
    """Serve ``status()`` at ``http://host:port/health``; ``port`` 0 picks a free port
    (read :attr:`port` after :meth:`start`)."""

    def __init__(
        self, status: Callable[[], dict[str, Any]], host: str = "127.0.0.1", port: int = 0
    ):

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0].rstrip("/") != "/health":
                    self._answer(404, {"detail": f"no route {self.path}; try /health"})
                    return
                data = status()
                self._answer(503 if data.get("status") == "stopped" else 200, data)

            def _answer(self, code: int, data: dict[str, Any]) -> None:
                body = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a health probe every few seconds is not news

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health endpoint on http://%s:%d/health", *self._server.server_address[:2])
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
