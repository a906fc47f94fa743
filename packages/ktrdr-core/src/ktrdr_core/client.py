"""The typed HTTP client every ktrdr program uses to talk to the backend."""

from __future__ import annotations

from typing import Any

import httpx

from ktrdr_core.errors import ApiError
from ktrdr_core.settings import Settings

API_PREFIX = "/api/v1"


class KtrdrClient:
    """Thin wrapper over httpx: base URL, token, timeouts and readable errors.

    Errors come back as ApiError carrying the status and the backend's `detail`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        settings = Settings.from_env() if base_url is None or token is None else None
        self.base_url = (base_url or settings.effective_api_url).rstrip("/")
        token = settings.api_token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KtrdrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request under /api/v1; raise ApiError on a transport error or a 4xx/5xx."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(
                f"cannot reach the ktrdr backend: {exc}. Is it running? (`ktrdr local up`)",
                url=self.base_url,
            ) from exc
        if response.is_error:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(str(detail), status=response.status_code, url=str(response.url))
        return response

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health").json()

    def version(self) -> dict[str, Any]:
        return self.request("GET", "/version").json()
