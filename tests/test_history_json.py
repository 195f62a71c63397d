"""The history's row prefixes (api.responses._row_prefixes): the time text computed as digits is
np.datetime_as_string's, on random instants across the years 1000 to 9999 (before and after
1970, leap days, the first and last millisecond of a day) and outside them (the fallback)."""

from __future__ import annotations

import numpy as np
import pytest

from crypto_etl.api.responses import _FIXED_WIDTH_MS, _row_prefixes


def _expected(ms: np.ndarray, after: bytes) -> list[bytes]:
    times = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")
    return [b'{"ts":"' + t.encode() + after for t in times.tolist()]


@pytest.mark.parametrize("seed", range(4))
def test_row_prefixes_are_datetime_as_string(seed):
    rng = np.random.default_rng(seed)
    low, high = _FIXED_WIDTH_MS
    edges = np.array(
        [
            low,
            high - 1,
            0,
            -1,
            86_399_999,
            86_400_000,
            951_782_400_000,  # 2000-02-29
            1_709_164_799_999,  # 2024-02-28 23:59:59.999
            1_709_164_800_000,  # 2024-02-29
        ],
        dtype="int64",
    )
    ms = np.concatenate([edges, rng.integers(low, high, 5000), rng.integers(0, 2**41, 5000)])
    rng.shuffle(ms)
    after = b'","price":'
    assert _row_prefixes(ms, after) == _expected(ms, after)


def test_row_prefixes_outside_four_digit_years():
    low, high = _FIXED_WIDTH_MS
    ms = np.array([low - 1, 0, high, high + 86_400_000 * 400], dtype="int64")
    assert _row_prefixes(ms, b'","x":') == _expected(ms, b'","x":')
