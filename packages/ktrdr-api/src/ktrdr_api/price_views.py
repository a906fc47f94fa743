"""A dataset version's price chart (``ktrdr_core.market_data.prices``), written beside the
artifact store when the version is imported and on first request for versions from before
(or from a fetch), then served as a file. Pure Python over the stored canonical CSV."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ktrdr_api.artifacts import ArtifactStore
from ktrdr_core.market_data.prices import price_series

VIEW = "prices.json"


def price_view(store: ArtifactStore, checksum: str, rows: int) -> Path:
    """The price-chart file of the dataset whose canonical CSV is artifact ``checksum``
    (``rows`` bars); made now when missing (written to a temporary name, then renamed)."""
    path = store.view_path(checksum, VIEW)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with store.path(checksum).open(encoding="utf-8", newline="") as lines:
        document = price_series(lines, rows)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    part.replace(path)
    return path
