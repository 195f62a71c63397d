"""How the history's rows are written (api.responses.columns_response, by polars): the times are
np.datetime_as_string's text, on random instants across the years 1000 to 9999 (before and after
1970, leap days, the first and last millisecond of a day) and outside them (the fallback), and
every float is orjson's text of it (the former writer's), on random bit patterns and the edge
cases of shortest round-trip formatting."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson
import pandas as pd
import pytest
from json_reference import reference_body

from crypto_etl.api.responses import _FOUR_DIGIT_YEARS_MS, _iso_times, columns_response
from crypto_etl.api.schemas import History


def _expected(ms: np.ndarray) -> list[str]:
    return np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC").tolist()


@pytest.mark.parametrize("seed", range(4))
def test_times_are_datetime_as_string(seed):
    rng = np.random.default_rng(seed)
    low, high = _FOUR_DIGIT_YEARS_MS
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
    assert _iso_times(ms).to_list() == _expected(ms)


def test_times_outside_four_digit_years():
    low, high = _FOUR_DIGIT_YEARS_MS
    ms = np.array([low - 1, 0, high, high + 86_400_000 * 400], dtype="int64")
    assert _iso_times(ms).to_list() == _expected(ms)


EDGE_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    0.30000000000000004,
    1e15,
    1e16,
    1e17,
    1e21,
    1e22,
    123456789012345680.0,
    1e-4,
    1e-5,
    1e-6,
    1e-7,
    2.5e-8,
    5e-324,  # the smallest subnormal
    2.2250738585072014e-308,  # the smallest normal
    1.7976931348623157e308,
    float("nan"),
    float("inf"),
    float("-inf"),
]


@pytest.mark.parametrize("seed", range(3))
def test_floats_are_written_as_orjson_writes_them(seed):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**64, 20_000, dtype=np.uint64).view(np.float64)
    scaled = rng.normal(size=20_000) * 10.0 ** rng.integers(-30, 30, 20_000)
    cents = np.round(rng.uniform(0, 1e6, 20_000), 2)
    values = np.concatenate([np.array(EDGE_FLOATS), bits, scaled, cents])
    ms = 1_704_067_200_000 + np.arange(len(values), dtype="int64")
    envelope = History(
        coin_id="bitcoin",
        vs_currency="usd",
        interval="raw",
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 1, 2, tzinfo=UTC),
        data=[],
        count=len(values),
    )
    body = columns_response(envelope, ["price", "other"], ms, [values, values[::-1]]).body
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(ms, unit="ms", utc=True),
            "price": values,
            "other": values[::-1],
        }
    )
    assert body == reference_body(envelope, frame)
    # and each number's text is orjson's (NaN and the infinities as null)
    rows = orjson.loads(body)["data"]
    assert [row["price"] for row in rows[: len(EDGE_FLOATS)]] == [
        None if not np.isfinite(v) else v for v in EDGE_FLOATS
    ]
