"""A local HTTP server speaking Binance's spot klines protocol from recorded-format fixtures.

The only fake in the suite: the real Binance is outside this machine's reach. It serves
``GET /api/v3/klines`` as Binance does — ``symbol``, ``interval``, ``startTime``/``endTime``
(ms, inclusive), ``limit`` (default 500, at most 1000), rows oldest first, the used-weight
header, ``-1121 Invalid symbol`` — on loopback, a free port, in a thread. Tests shape what it
says next: ``script`` queues whole answers (a 429 with Retry-After, a 503, malformed rows);
``missing`` hides bars (holes); ``changes`` restates bars (a provider revising history).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

FIXTURES = Path(__file__).parent / "binance"  # answers in Binance's recorded format
KLINE_WEIGHT = 2  # what one klines request costs on Binance


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class FakeBinance:
    """``rows``: kline rows (Binance's JSON form) of ``symbol`` at ``interval``."""

    def __init__(self, rows: list[list[Any]], *, symbol: str = "BTCUSDT", interval: str = "1h"):
        self.rows = rows
        self.symbol = symbol
        self.interval = interval
        self.script: deque[tuple[int, dict[str, str], Any]] = deque()
        self.missing: set[int] = set()  # open times (epoch seconds) left out of answers
        self.changes: dict[int, dict[int, str]] = {}  # open time -> {column: new text}
        self.requests: list[dict[str, str]] = []
        self.weight = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeBinance:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        self.requests.append(query)
        self.weight += KLINE_WEIGHT
        headers = {"X-MBX-USED-WEIGHT-1M": str(self.weight)}
        if self.script:
            status, extra, body = self.script.popleft()
            return status, headers | extra, body
        if query.get("symbol") != self.symbol:
            return 400, headers, fixture("binance_invalid_symbol.json")
        if query.get("interval") != self.interval:
            return 400, headers, {"code": -1120, "msg": "Invalid interval."}
        limit = int(query.get("limit", 500))
        if not 1 <= limit <= 1000:
            return 400, headers, {"code": -1100, "msg": "Illegal characters found in limit."}
        start = int(query.get("startTime", 0))
        end = int(query.get("endTime", 2**62))
        out = []
        for row in self.rows:
            if start <= row[0] <= end and row[0] // 1000 not in self.missing:
                changed = list(row)
                for column, text in self.changes.get(row[0] // 1000, {}).items():
                    changed[column] = text
                out.append(changed)
                if len(out) == limit:
                    break
        return 200, headers, out

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path != "/api/v3/klines":
                    status, headers, body = 404, {}, {"code": -1, "msg": f"no route {url.path}"}
                else:
                    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                    status, headers, body = fake.answer(query)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass  # quiet test output

        return Handler
