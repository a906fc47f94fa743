"""The typed HTTP client every ktrdr program uses to talk to the backend.

One method per route; request and response bodies are the models of ``ktrdr_core.protocol``.
Every request carries the protocol version (``X-Ktrdr-Protocol``), so a backend that speaks
another one answers 426 saying which side to upgrade.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from ktrdr_core.access import AuditEventView, Role, TokenCreated, TokenRequest, TokenView
from ktrdr_core.checksums import file_sha256
from ktrdr_core.errors import ApiError, RequestError
from ktrdr_core.protocol import (
    PROTOCOL_HEADER,
    ArtifactKind,
    ArtifactView,
    AttemptRef,
    BacktestRequest,
    BundleKeeping,
    ClaimRequest,
    ClaimResponse,
    Completion,
    DataFetchRequest,
    DatasetView,
    Failure,
    Heartbeat,
    HeartbeatResponse,
    ModelView,
    OperationKind,
    OperationResult,
    OperationState,
    OperationView,
    Progress,
    Release,
    StrategyAuditRequest,
    StrategyValidation,
    StrategyValidationRequest,
    SymbolSettings,
    SymbolView,
    TrainingRequest,
    TrialRequest,
    TrialView,
    TrialWatch,
    TuneListing,
    TuneRequest,
    TuneView,
    WalkforwardRequest,
    WalkforwardView,
    WindowMode,
    WorkerRegistration,
    WorkerView,
)
from ktrdr_core.settings import Settings
from ktrdr_core.version import PROTOCOL_VERSION

API_PREFIX = "/api/v1"
CHUNK_BYTES = 1024 * 1024  # upload and download piece size

_M = TypeVar("_M", bound=BaseModel)


def _seg(value: str, what: str) -> str:
    """One URL path segment: a value with ``/`` or ``..`` cannot reach another route, and an
    empty one (which would reach the collection's route instead) is refused, naming ``what``."""
    if not str(value).strip():
        raise RequestError(f"the {what} is empty")
    return quote(str(value), safe="")


def _op(operation_id: str) -> str:
    return _seg(operation_id, "operation id")


def _worker(worker_id: str) -> str:
    return _seg(worker_id, "worker id")


def _dataset(symbol: str, timeframe: str) -> str:
    return f"/data/{_seg(symbol, 'symbol')}/{_seg(timeframe, 'timeframe')}"


def tls_verification(ca_bundle: Path | None) -> ssl.SSLContext | bool:
    """What httpx verifies an https backend with: a context trusting only ``ca_bundle``
    (PEM), or True (the system trust store). A missing or unreadable bundle is an error
    naming the file, not a silent fall-back to the system store."""
    if ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise RequestError(
            f"KTRDR_CA_BUNDLE {ca_bundle}: cannot load it as a PEM CA bundle ({exc})"
        ) from None


def _certificate_refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class CertificateRefused(ApiError):
    """The backend's TLS certificate is not signed by a CA this side trusts: a setting to
    fix (KTRDR_CA_BUNDLE), not a backend that is away."""


class ChecksumError(ApiError):
    """A downloaded file's sha256 is not the one the backend announced."""


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
        ca_bundle: Path | None = None,
    ):
        """``base_url``, ``token``: default KTRDR_API_URL and KTRDR_API_TOKEN. An https URL is
        verified against ``ca_bundle`` (a PEM file), else KTRDR_CA_BUNDLE, else the system's
        trust store."""
        settings = Settings.from_env()
        self.base_url = (base_url or settings.effective_api_url).rstrip("/")
        token = settings.api_token if token is None else token
        self.ca_bundle = ca_bundle or settings.ca_bundle
        headers = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=tls_verification(self.ca_bundle),
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
            raise self._unreachable(exc) from exc
        if response.is_error:
            self._raise(response)
        return response

    def _unreachable(self, exc: httpx.TransportError) -> ApiError:
        """The error for a request that got no answer: a certificate the CA bundle does not
        vouch for is named as such (with what to set), anything else as an unreachable
        backend."""
        if _certificate_refused(exc):
            trusted = (
                f"the CA bundle {self.ca_bundle}" if self.ca_bundle else "the system trust store"
            )
            return CertificateRefused(
                f"TLS: the backend's certificate is not trusted by {trusted}: {exc}. Set "
                "KTRDR_CA_BUNDLE to the PEM file of the CA that signed the backend's "
                "certificate (compose/README.md, 'TLS and tokens').",
                url=self.base_url,
            )
        return ApiError(
            f"cannot reach the ktrdr backend: {exc}. Is it running? (`ktrdr local up`)",
            url=self.base_url,
        )

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health").json()

    def version(self) -> dict[str, Any]:
        return self.request("GET", "/version").json()

    # --- helpers ------------------------------------------------------------------------

    def _model(self, model: type[_M], method: str, path: str, **kwargs: Any) -> _M:
        return model.model_validate(self.request(method, path, **kwargs).json())

    def _models(self, model: type[_M], method: str, path: str, **kwargs: Any) -> list[_M]:
        adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
        return adapter.validate_python(self.request(method, path, **kwargs).json())

    @staticmethod
    def _body(model: BaseModel) -> dict[str, Any]:
        return model.model_dump(mode="json", exclude_none=True)

    def _download(
        self,
        path: str,
        dest: Path,
        params: Mapping[str, Any] | None = None,
        interrupt: Callable[[], None] | None = None,
    ) -> str:
        """Stream ``path`` into ``dest`` (atomically), check its sha256; returns the sha256.

        ``interrupt`` is called as each piece arrives; whatever it raises ends the download
        (a cancelled job need not wait for a slow transfer) and leaves no partial file.
        """
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        digest = hashlib.sha256()
        try:
            with self._http.stream("GET", path, params=params) as response:
                if response.is_error:
                    response.read()
                    self._raise(response)
                announced = response.headers.get("x-content-sha256")
                with part.open("wb") as out:
                    # Pieces as they arrive (not gathered to CHUNK_BYTES), so ``interrupt``
                    # is asked often on a slow link.
                    for chunk in response.iter_bytes():
                        if interrupt is not None:
                            interrupt()
                        digest.update(chunk)
                        out.write(chunk)
        except httpx.TransportError as exc:
            part.unlink(missing_ok=True)
            raise ApiError(f"download of {path} failed: {exc}", url=self.base_url) from exc
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        sha = digest.hexdigest()
        if announced and announced != sha:
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"downloaded {path} has sha256 {sha}, the backend announced {announced}",
                url=self.base_url + API_PREFIX + path,
            )
        part.replace(dest)
        return sha

    def _raise(self, response: httpx.Response) -> None:
        """ApiError with the backend's ``detail`` and its whole JSON body (``issues``, …)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        detail = body.get("detail", response.text) if isinstance(body, dict) else response.text
        raise ApiError(
            str(detail),
            status=response.status_code,
            url=str(response.url),
            body=body if isinstance(body, dict) else None,
        )

    @staticmethod
    def _chunks(file: BinaryIO) -> Iterator[bytes]:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk

    # --- workers ------------------------------------------------------------------------

    def register_worker(self, registration: WorkerRegistration) -> WorkerView:
        return self._model(WorkerView, "POST", "/workers", json=self._body(registration))

    def list_workers(self, kind: OperationKind | None = None) -> list[WorkerView]:
        params = {"kind": kind.value} if kind else None
        return self._models(WorkerView, "GET", "/workers", params=params)

    def claim(self, worker_id: str, timeout_s: float = 20.0) -> ClaimResponse | None:
        """Long poll for work: the operation, or None when none came within ``timeout_s``."""
        response = self.request(
            "POST",
            f"/workers/{_worker(worker_id)}/claim",
            json=self._body(ClaimRequest(timeout_s=timeout_s)),
            timeout=timeout_s + 30.0,  # the backend holds the request up to timeout_s
        )
        if response.status_code == 204:
            return None
        return ClaimResponse.model_validate(response.json())

    def heartbeat(
        self,
        worker_id: str,
        operation_id: str | None = None,
        attempt: int | None = None,
        *,
        progress: Progress | None = None,
        checkpoint_sha256: str | None = None,
    ) -> HeartbeatResponse:
        """Renew liveness (and the lease). ``cancel`` in the answer means: stop and confirm."""
        beat = Heartbeat(
            operation_id=operation_id,
            attempt=attempt,
            progress=progress,
            checkpoint_sha256=checkpoint_sha256,
        )
        return self._model(
            HeartbeatResponse,
            "POST",
            f"/workers/{_worker(worker_id)}/heartbeat",
            json=self._body(beat),
        )

    def complete_operation(
        self, worker_id: str, operation_id: str, attempt: int, result: OperationResult
    ) -> OperationView:
        body = self._body(Completion(attempt=attempt, result=result))
        path = f"/workers/{_worker(worker_id)}/operations/{_op(operation_id)}/complete"
        return self._model(OperationView, "POST", path, json=body)

    def fail_operation(
        self, worker_id: str, operation_id: str, attempt: int, error: str
    ) -> OperationView:
        body = self._body(Failure(attempt=attempt, error=error))
        path = f"/workers/{_worker(worker_id)}/operations/{_op(operation_id)}/fail"
        return self._model(OperationView, "POST", path, json=body)

    def acknowledge_cancel(self, worker_id: str, operation_id: str, attempt: int) -> OperationView:
        path = f"/workers/{_worker(worker_id)}/operations/{_op(operation_id)}/cancelled"
        return self._model(
            OperationView, "POST", path, json=self._body(AttemptRef(attempt=attempt))
        )

    def release_operation(
        self, worker_id: str, operation_id: str, attempt: int, reason: str = "worker shutting down"
    ) -> OperationView:
        body = self._body(Release(attempt=attempt, reason=reason))
        path = f"/workers/{_worker(worker_id)}/operations/{_op(operation_id)}/release"
        return self._model(OperationView, "POST", path, json=body)

    # --- tokens and the audit trail (admin) -----------------------------------------------

    def create_token(self, name: str, role: Role | str) -> TokenCreated:
        body = TokenRequest(name=name, role=Role(role)).model_dump(mode="json")
        return self._model(TokenCreated, "POST", "/tokens", json=body)

    def list_tokens(self, *, include_revoked: bool = False) -> list[TokenView]:
        params = {"include_revoked": "true"} if include_revoked else None
        return self._models(TokenView, "GET", "/tokens", params=params)

    def revoke_token(self, token_id: str) -> TokenView:
        return self._model(TokenView, "DELETE", f"/tokens/{_seg(token_id, 'token id')}")

    def audit_events(
        self,
        *,
        limit: int = 100,
        token_id: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
    ) -> list[AuditEventView]:
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("token_id", token_id), ("action", action), ("outcome", outcome)):
            if value:
                params[key] = value
        return self._models(AuditEventView, "GET", "/audit", params=params)

    # --- operations ---------------------------------------------------------------------

    def list_operations(
        self,
        kind: OperationKind | str | None = None,
        state: OperationState | str | None = None,
        limit: int = 100,
        strategy: str | None = None,
        top_level: bool = False,
    ) -> list[OperationView]:
        """Newest first; ``top_level``: leave out child operations (folds, trials)."""
        params: dict[str, Any] = {"limit": limit}
        if top_level:
            params["top_level"] = "true"
        if kind:
            params["kind"] = str(kind)
        if state:
            params["state"] = str(state)
        if strategy:
            params["strategy"] = strategy
        return self._models(OperationView, "GET", "/operations", params=params)

    def get_operation(self, operation_id: str) -> OperationView:
        return self._model(OperationView, "GET", f"/operations/{_op(operation_id)}")

    def cancel_operation(self, operation_id: str) -> OperationView:
        return self._model(OperationView, "POST", f"/operations/{_op(operation_id)}/cancel")

    def retry_operation(self, operation_id: str) -> OperationView:
        return self._model(OperationView, "POST", f"/operations/{_op(operation_id)}/retry")

    # --- artifacts ----------------------------------------------------------------------

    def upload_artifact(
        self,
        path: Path,
        kind: ArtifactKind,
        *,
        sha256: str | None = None,
        operation_id: str | None = None,
        attempt: int | None = None,
    ) -> ArtifactView:
        """Upload a file (streamed) with its sha256, so a corrupted transfer is refused.

        Pass ``sha256`` when the caller has already hashed the file, to skip a second read.
        A worker names the ``operation_id`` and ``attempt`` it uploads for (a worker token's
        uploads are accepted only for the attempt its worker holds).
        """
        path = Path(path)
        sha256 = sha256 or file_sha256(path)
        params: dict[str, Any] = {"kind": kind.value}
        if operation_id is not None and attempt is not None:
            params.update(operation_id=operation_id, attempt=attempt)
        with path.open("rb") as file:
            return self._model(
                ArtifactView,
                "POST",
                "/artifacts",
                params=params,
                content=self._chunks(file),
                headers={
                    "X-Content-SHA256": sha256,
                    "Content-Type": "application/octet-stream",
                },
            )

    def artifact_exists(self, sha256: str) -> bool:
        try:
            response = self._http.head(f"/artifacts/{_seg(sha256, 'artifact sha256')}")
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code == 404:
            return False
        if response.is_error:
            self._raise(response)
        return True

    def download_artifact(
        self, sha256: str, dest: Path, *, interrupt: Callable[[], None] | None = None
    ) -> Path:
        """Download into ``dest``; ChecksumError when the bytes are not ``sha256``.
        ``interrupt``: called per piece received; what it raises aborts the download."""
        got = self._download(
            f"/artifacts/{_seg(sha256, 'artifact sha256')}", dest, interrupt=interrupt
        )
        if got != sha256:
            Path(dest).unlink(missing_ok=True)
            raise ChecksumError(f"artifact {sha256} arrived as {got}", url=self.base_url)
        return Path(dest)

    # --- data ---------------------------------------------------------------------------

    def import_data(
        self,
        symbol: str,
        timeframe: str,
        path: Path,
        *,
        source_name: str | None = None,
        exchange: str | None = None,
    ) -> DatasetView:
        """Upload a CSV (streamed); the backend validates, normalises and catalogues it.
        ``exchange`` (XNYS, NASDAQ, 24/7) becomes the symbol's setting and has a worker check
        the bars against its sessions (``DatasetView.exact_report``)."""
        path = Path(path)
        params = {"source_name": source_name or path.name}
        if exchange is not None:
            params["exchange"] = exchange
        with path.open("rb") as file:
            return self._model(
                DatasetView,
                "POST",
                f"{_dataset(symbol, timeframe)}",
                params=params,
                content=self._chunks(file),
                headers={"Content-Type": "text/csv"},
            )

    def list_data(
        self, symbol: str | None = None, timeframe: str | None = None, all_versions: bool = False
    ) -> list[DatasetView]:
        params: dict[str, Any] = {"all_versions": all_versions}
        if symbol:
            params["symbol"] = symbol
        if timeframe:
            params["timeframe"] = timeframe
        return self._models(DatasetView, "GET", "/data", params=params)

    def get_data(self, symbol: str, timeframe: str, version: int | None = None) -> DatasetView:
        params = {"version": version} if version else None
        return self._model(
            DatasetView,
            "GET",
            f"{_dataset(symbol, timeframe)}",
            params=params,
        )

    def download_data(
        self, symbol: str, timeframe: str, dest: Path, version: int | None = None
    ) -> str:
        """Download the normalised CSV into ``dest``; returns its (verified) sha256."""
        params = {"version": version} if version else None
        return self._download(f"{_dataset(symbol, timeframe)}/csv", dest, params)

    def delete_data(
        self, symbol: str, timeframe: str, version: int | None = None, force: bool = False
    ) -> list[DatasetView]:
        params: dict[str, Any] = {"force": force}
        if version:
            params["version"] = version
        return self._models(
            DatasetView,
            "DELETE",
            f"{_dataset(symbol, timeframe)}",
            params=params,
        )

    def start_data_fetch(
        self,
        provider: str,
        symbol: str,
        timeframe: str,
        *,
        mode: str = "full",
        start: datetime | None = None,
        end: datetime | None = None,
        exchange: str | None = None,
    ) -> OperationView:
        """Start a data-fetch operation (a worker fetches from ``provider`` and the backend
        catalogues the merged bars as the next version). ``mode``: full, tail, backfill or
        repair; ``start``/``end``: UTC bar opens in ``[start, end)``; ``exchange``: as for
        :meth:`import_data` (default: the symbol's setting, else what the provider knows)."""
        body = DataFetchRequest(
            provider=provider,
            symbol=symbol,
            timeframe=timeframe,
            mode=mode,
            start=start,
            end=end,
            exchange=exchange,
        )
        return self._model(OperationView, "POST", "/data/fetch", json=self._body(body))

    def set_exchange(self, symbol: str, exchange: str | None) -> SymbolView:
        """Set (None: clear) a symbol's exchange; the newest version of each of its
        timeframes is checked against it (``SymbolView.queued`` names those operations)."""
        # Every field sent, null included: a null exchange is what clears it.
        body = SymbolSettings(exchange=exchange).model_dump(mode="json")
        return self._model(SymbolView, "PUT", f"/symbols/{_seg(symbol, 'symbol')}", json=body)

    def get_symbol(self, symbol: str) -> SymbolView:
        """A symbol's settings; ApiError 404 when it has none."""
        return self._model(SymbolView, "GET", f"/symbols/{_seg(symbol, 'symbol')}")

    # --- strategies, training, backtests ------------------------------------------------

    def validate_strategy(
        self, strategy: str, overrides: Mapping[str, Any] | None = None
    ) -> StrategyValidation:
        """Validate strategy YAML text; ApiError (422) lists every issue with its path."""
        body = StrategyValidationRequest(strategy=strategy, overrides=dict(overrides or {}))
        return self._model(
            StrategyValidation, "POST", "/strategies/validate", json=self._body(body)
        )

    def start_training(
        self, strategy: str, overrides: Mapping[str, Any] | None = None
    ) -> OperationView:
        body = TrainingRequest(strategy=strategy, overrides=dict(overrides or {}))
        return self._model(OperationView, "POST", "/training", json=self._body(body))

    def start_strategy_audit(
        self,
        strategy: str,
        symbol: str,
        *,
        overrides: Mapping[str, Any] | None = None,
        model_id: str | None = None,
        train: bool = False,
        checks: Sequence[str] | None = None,
        cuts: int = 50,
        permutations: int = 1000,
    ) -> OperationView:
        """Start a strategy audit (``ktrdr_core.strategy_audit``) of ``strategy`` (YAML text)
        on ``symbol``'s stored data; its result's ``report`` holds every check's verdict."""
        body = StrategyAuditRequest(
            strategy=strategy,
            overrides=dict(overrides or {}),
            symbol=symbol,
            model_id=model_id,
            train=train,
            cuts=cuts,
            permutations=permutations,
            **({"checks": list(checks)} if checks is not None else {}),
        )
        return self._model(OperationView, "POST", "/strategies/audits", json=self._body(body))

    def start_backtest(
        self,
        model_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> OperationView:
        body = BacktestRequest(
            model_id=model_id, start=start, end=end, settings=dict(settings or {})
        )
        return self._model(OperationView, "POST", "/backtests", json=self._body(body))

    def list_backtests(self, state: OperationState | str | None = None) -> list[OperationView]:
        params = {"state": str(state)} if state else None
        return self._models(OperationView, "GET", "/backtests", params=params)

    def get_backtest(self, operation_id: str) -> OperationView:
        return self._model(OperationView, "GET", f"/backtests/{_op(operation_id)}")

    def backtest_report(self, operation_id: str) -> dict[str, Any]:
        """The report JSON document (schema in ktrdr_core.reports)."""
        return self.request("GET", f"/backtests/{_op(operation_id)}/report").json()

    def backtest_series(self, operation_id: str) -> dict[str, Any]:
        """The series its page draws (``ktrdr-backtest-series/1``)."""
        return self.request("GET", f"/backtests/{_op(operation_id)}/series").json()

    def download_backtest_html(self, operation_id: str, dest: Path) -> str:
        """Save the self-contained interactive report (one HTML file that opens offline)."""
        return self._download(f"/backtests/{_op(operation_id)}/report.html", dest)

    # --- walk-forwards -------------------------------------------------------------------

    def start_walkforward(
        self,
        strategy: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        folds: int = 4,
        window: WindowMode | str = WindowMode.ROLLING,
        train_blocks: int = 3,
        embargo_bars: int | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> OperationView:
        body = WalkforwardRequest(
            strategy=strategy,
            overrides=dict(overrides or {}),
            folds=folds,
            window=WindowMode(window),
            train_blocks=train_blocks,
            embargo_bars=embargo_bars,
            settings=dict(settings or {}),
        )
        return self._model(OperationView, "POST", "/walkforwards", json=self._body(body))

    def list_walkforwards(self, state: OperationState | str | None = None) -> list[OperationView]:
        params = {"state": str(state)} if state else None
        return self._models(OperationView, "GET", "/walkforwards", params=params)

    def get_walkforward(self, operation_id: str) -> WalkforwardView:
        """The walk-forward and its child operations."""
        return self._model(WalkforwardView, "GET", f"/walkforwards/{_op(operation_id)}")

    def walkforward_report(self, operation_id: str) -> dict[str, Any]:
        """The aggregate report JSON (``ktrdr-walkforward-report/1``)."""
        return self.request("GET", f"/walkforwards/{_op(operation_id)}/report").json()

    def download_walkforward_html(self, operation_id: str, dest: Path) -> str:
        """Save the walk-forward's self-contained interactive report."""
        return self._download(f"/walkforwards/{_op(operation_id)}/report.html", dest)

    def page_url(self, page: str, item: str | None = None) -> str:
        """The dashboard's address of ``page`` (operations, backtests, walkforwards, models,
        …) and ``item`` on it. The token is never part of it: the page asks for it."""
        return f"{self.base_url}/#/{page}" + (f"/{item}" if item else "")

    # --- parameter studies --------------------------------------------------------------

    def start_tune(self, request: TuneRequest) -> OperationView:
        """Start a parameter study (see ``ktrdr_core.tuning``); 422 lists every problem of
        the strategy and the search space."""
        return self._model(OperationView, "POST", "/tunes", json=self._body(request))

    def list_tunes(self, state: OperationState | str | None = None) -> list[TuneListing]:
        """Studies, newest first, with their trials ended so far and best value."""
        params = {"state": str(state)} if state else None
        return self._models(TuneListing, "GET", "/tunes", params=params)

    def get_tune(self, operation_id: str) -> TuneView:
        """The study with its trials and holdout runs."""
        return self._model(TuneView, "GET", f"/tunes/{_op(operation_id)}")

    def best_tune(self, operation_id: str) -> dict[str, Any]:
        """The best trial, its holdout run and the strategy with its parameters (YAML)."""
        return self.request("GET", f"/tunes/{_op(operation_id)}/best").json()

    def driver_tune(self, worker_id: str, operation_id: str, attempt: int) -> TuneView:
        """The study as the worker holding it at ``attempt`` reads it (its driver)."""
        return self._model(
            TuneView,
            "GET",
            f"/workers/{worker_id}/tunes/{_op(operation_id)}",
            params={"attempt": attempt},
        )

    def create_trial(self, worker_id: str, operation_id: str, request: TrialRequest) -> TrialView:
        """Ask for a trial of the study the worker holds (the same trial again: the same
        operation)."""
        return self._model(
            TrialView,
            "POST",
            f"/workers/{worker_id}/tunes/{_op(operation_id)}/trials",
            json=self._body(request),
        )

    def prune_trial(
        self, worker_id: str, operation_id: str, number: int, attempt: int
    ) -> TrialView:
        """Stop trial ``number`` of the study the worker holds (its unfinished folds)."""
        return self._model(
            TrialView,
            "POST",
            f"/workers/{worker_id}/tunes/{_op(operation_id)}/trials/{number}/prune",
            json={"attempt": attempt},
        )

    def watch_trials(
        self, worker_id: str, operation_id: str, request: TrialWatch
    ) -> list[TrialView]:
        """Wait (up to ``request.wait_s``) for watched trials of the study the worker holds
        to end or complete a fold; those that did (none when the wait ran out)."""
        return self._models(
            TrialView,
            "POST",
            f"/workers/{worker_id}/tunes/{_op(operation_id)}/changes",
            json=self._body(request),
            timeout=request.wait_s + 30.0,  # the backend holds the request up to wait_s
        )

    def keep_bundles(self, worker_id: str, operation_id: str, attempt: int) -> BundleKeeping:
        """Keep only the best trials' model bundles of the study the worker holds."""
        return self._model(
            BundleKeeping,
            "POST",
            f"/workers/{worker_id}/tunes/{_op(operation_id)}/keep",
            json={"attempt": attempt},
        )

    # --- models -------------------------------------------------------------------------

    def import_model(self, path: Path) -> ModelView:
        """Upload a model bundle zip trained elsewhere (streamed, with its sha256).

        The backend validates its ``bundle.json`` and weights checksum (ApiError 422 says what
        is wrong) and answers the catalogued model; the same bundle again gives the existing
        model. The data the bundle names is recorded as-is (version 0): import that data too
        before backtesting the model on this backend.
        """
        path = Path(path)
        sha256 = file_sha256(path)
        with path.open("rb") as file:
            return self._model(
                ModelView,
                "POST",
                "/models",
                content=self._chunks(file),
                headers={"X-Content-SHA256": sha256, "Content-Type": "application/zip"},
            )

    def list_models(self) -> list[ModelView]:
        return self._models(ModelView, "GET", "/models")

    def get_model(self, model_id: str) -> ModelView:
        return self._model(ModelView, "GET", f"/models/{_seg(model_id, 'model id')}")

    def download_model(self, model_id: str, dest: Path) -> str:
        """Download the bundle zip into ``dest``; returns its (verified) sha256."""
        return self._download(f"/models/{_seg(model_id, 'model id')}/bundle", dest)

    def delete_model(self, model_id: str, force: bool = False) -> ModelView:
        return self._model(
            ModelView, "DELETE", f"/models/{_seg(model_id, 'model id')}", params={"force": force}
        )
