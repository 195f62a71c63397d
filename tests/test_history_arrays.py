"""The history route's array path (analytics.series.merge_point_matrix, history_feature_arrays and
api.responses.columns_response) writes the same bytes as the frame path it replaced
(combine_points, history_features and the former frame writer, tests/json_reference.py), on
random series with gaps, missing values and points at the same millisecond in both tables."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from json_reference import reference_body

from crypto_etl.analytics import series
from crypto_etl.api.responses import columns_response
from crypto_etl.api.schemas import History
from crypto_etl.storage.queries import _series_frame

START = datetime(2024, 1, 1, tzinfo=UTC)


def _matrix(rng: np.random.Generator, snapshots: int, backfill: int) -> np.ndarray:
    """Rows (source, epoch seconds, price, market cap, volume) as the history query reads them."""
    base = START.timestamp()
    snap_t = base + np.sort(rng.uniform(0, 5 * 86400, snapshots))
    snap_t[1::7] = snap_t[::7][: len(snap_t[1::7])] + 0.0002  # same millisecond, one table
    back_t = base + 3600.0 * np.sort(rng.choice(24 * 5, backfill, replace=False))
    if backfill and snapshots:
        snap_t[: min(3, snapshots)] = back_t[: min(3, snapshots)]  # same time in both tables
    rows = []
    for source, times in ((0.0, snap_t), (1.0, back_t)):
        for t in times:
            price = rng.uniform(10, 1000) * (10.0 ** rng.integers(-8, 12))
            rows.append(
                (
                    source,
                    t,
                    np.nan if rng.random() < 0.05 else price,
                    np.nan if rng.random() < 0.2 else price * 1e7,
                    np.nan if rng.random() < 0.2 else rng.uniform(0, 1e12),
                )
            )
    matrix = np.array(rows, dtype="float64").reshape(-1, 5)
    return matrix[np.argsort(matrix[:, 1], kind="stable")]


def _frame_path(matrix, interval, windows, envelope, page) -> bytes:
    snapshots = matrix[:, 0] == 0
    points = series.combine_points(
        _series_frame(matrix[snapshots, 1:], series.POINT_COLUMNS),
        _series_frame(matrix[~snapshots, 1:], series.POINT_COLUMNS),
    )
    frame = series.history_features(points, interval, windows)
    return reference_body(envelope.model_copy(update={"count": len(frame)}), frame.iloc[page])


def _array_path(matrix, interval, windows, envelope, page) -> bytes:
    ms, values = series.merge_point_matrix(matrix)
    names, ms, columns = series.history_feature_arrays(ms, values, interval, windows)
    envelope = envelope.model_copy(update={"count": len(ms)})
    return columns_response(envelope, names, ms[page], [c[page] for c in columns]).body


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("interval", ["raw", "5m", "1h", "1d"])
def test_array_path_writes_the_frame_paths_bytes(seed, interval):
    rng = np.random.default_rng(seed)
    sizes = [(400, 0), (0, 60), (300, 50), (1, 0), (0, 0), (2000, 100)][seed]
    matrix = _matrix(rng, *sizes)
    windows = [[7, 30], [2], [3, 5, 1000]][seed % 3]
    envelope = History(
        coin_id="bitcoin",
        vs_currency="usd",
        interval=interval,
        start=START,
        end=START,
        data=[],
        count=0,
    )
    for page in (slice(0, 10_000), slice(5, 25), slice(10_000, 10_010)):
        expected = _frame_path(matrix, interval, windows, envelope, page)
        assert _array_path(matrix, interval, windows, envelope, page) == expected
