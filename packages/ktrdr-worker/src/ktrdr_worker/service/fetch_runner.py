"""The data-fetch job: download the stored version, fetch from the provider, merge, upload.

Runs on CPU backtest workers (``SERVED_BY``). The provider is configured from this worker's
environment (``KTRDR_BINANCE_URL``, ``KTRDR_IB_HOST`` …), so credentials and gateways stay
with the worker that can reach them.
"""

from __future__ import annotations

import logging
import os
import time

from ktrdr_core.protocol import ArtifactKind, DataFetchInputs, DataFetchResult
from ktrdr_worker.providers import ProviderError, make_provider
from ktrdr_worker.providers.base import Bar, iso
from ktrdr_worker.providers.fetching import canonical_csv, merge, plan_windows, read_bars
from ktrdr_worker.service.job import Job

__all__ = ["run_data_fetch"]

log = logging.getLogger("ktrdr_worker.service")

_FETCH_DONE = 90.0  # percent once every window is fetched; merging and upload follow


def _epoch(value) -> int | None:  # type: ignore[no-untyped-def]
    return int(value.timestamp()) if value is not None else None


def run_data_fetch(job: Job) -> DataFetchResult:
    """Fetch the bars the mode asks for, merge them into the stored version (stored values
    win; disagreements are counted and shown) and upload the merged canonical CSV."""
    inputs = job.claim.inputs
    if not isinstance(inputs, DataFetchInputs):
        raise TypeError(f"a data-fetch job got {inputs.kind} inputs")
    tf = inputs.timeframe
    where = f"{inputs.provider} {inputs.symbol} {tf.value}"
    now = int(time.time())
    stored: list[Bar] = []
    if inputs.stored is not None:
        ref = inputs.stored
        job.progress(0.0, f"downloading stored {ref.symbol} {tf.value} v{ref.version}", now=True)
        stored = read_bars(job.fetch(ref.checksum), tf)
    try:
        windows = plan_windows(
            inputs.mode,
            tf,
            [bar.time for bar in stored],
            start=_epoch(inputs.start),
            end=_epoch(inputs.end),
            now=now,
            exchange=inputs.exchange,
        )
    except ValueError as exc:
        raise ProviderError(f"{where} {inputs.mode}: {exc}") from None
    total = sum(w.end - w.start for w in windows) or 1
    provider = make_provider(inputs.provider, os.environ)
    fetched: list[Bar] = []
    holes = []
    try:
        provider.check_symbol(inputs.symbol)
        # What the provider knows of the symbol's exchange, for the version's exact report
        # (the backend prefers the exchange asked for, or the symbol's setting).
        exchange = provider.exchange(inputs.symbol)
        done = 0
        for i, window in enumerate(windows, 1):
            job.check()
            job.progress(
                _FETCH_DONE * done / total,
                f"{where}: window {i}/{len(windows)} {iso(window.start)} → {iso(window.end)}",
                now=True,
            )

            def on_page(count: int, reached: int, window=window, done=done) -> None:  # type: ignore[no-untyped-def]
                job.check()
                covered = done + max(0, min(reached, window.end) - window.start)
                job.progress(
                    _FETCH_DONE * covered / total,
                    f"{where}: {len(fetched) + count} bars, up to {iso(min(reached, window.end))}",
                )

            bars = provider.fetch(inputs.symbol, tf, window.start, window.end,
                                  on_page=on_page, now=now)  # fmt: skip
            fetched.extend(bars)
            done += window.end - window.start
            if window.missing_bars is not None:
                holes.append(window.to_dict() | {"filled": len(bars)})
    finally:
        provider.close()
    if not fetched and not stored:
        raise ProviderError(
            f"{where}: the provider has no bars from {iso(windows[0].start) if windows else '?'} "
            f"to {iso(windows[-1].end) if windows else '?'}; check the symbol and the range"
        )
    job.check(finishing=True)
    job.progress(_FETCH_DONE, f"{where}: merging {len(fetched)} bars into {len(stored)}", now=True)
    merged = merge(stored, sorted(fetched, key=lambda b: b.time))
    if merged.conflicts:
        log.warning(
            "%s: %d re-fetched bar(s) disagree with stored ones; stored values kept",
            where,
            merged.conflicts,
        )
    path = job.workdir / f"{inputs.symbol}_{tf.value}.csv"
    path.write_text(canonical_csv(merged.bars, tf, where), encoding="utf-8", newline="\n")
    sha = job.upload(path, ArtifactKind.DATA)
    summary = {
        "provider": inputs.provider,
        "symbol": inputs.symbol,
        "timeframe": tf.value,
        "mode": inputs.mode.value,
        "windows": [w.to_dict() for w in windows],
        "bars_fetched": len(fetched),
        "bars_added": merged.added,
        "bars_overlapping": merged.overlapping,
        "conflicts": merged.conflicts,
        "conflict_examples": merged.examples,
        "rows_before": len(stored),
        "rows_after": len(merged.bars),
        "stored_version": inputs.stored.version if inputs.stored else None,
        "requests": provider.requests,
        "retries": provider.retries,
        "waited_s": round(provider.waited_s, 3),
    }
    if inputs.mode.value == "repair":
        summary["holes"] = holes
    summary["provider_exchange"] = exchange
    return DataFetchResult(data_sha256=sha, summary=summary, exchange=exchange)
