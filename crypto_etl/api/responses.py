"""How the routes write their JSON bodies: a model as it is, a model cached until the data changes,
or a model whose `data` list is rendered from a DataFrame column by column."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from itertools import repeat

import numpy as np
import orjson
import pandas as pd
from fastapi import Response
from pydantic import BaseModel

from crypto_etl.api.deps import CacheDep, SessionDep


def json_response(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


def cached_response(
    cache: CacheDep, session: SessionDep, key: Hashable, build: Callable[[], BaseModel]
) -> Response:
    """The body of `build()`, reused until the data changes (see crypto_etl.api.cache); the
    X-Cache header says which."""
    body, hit = cache.get_or_render(session, key, lambda: build().model_dump_json().encode())
    headers = {"X-Cache": "hit" if hit else "miss"}
    return Response(body, media_type="application/json", headers=headers)


def frame_response(envelope: BaseModel, frame: pd.DataFrame) -> Response:
    """`envelope` as JSON with its `data` list made from `frame` column by column: several times
    faster than a model per row when a history has thousands of points. The response models
    document this shape and the tests hold the answers to them. Times are written as ISO 8601 UTC
    with milliseconds, NaN as null."""
    times = frame.iloc[:, 0].dt.tz_convert(None).to_numpy("datetime64[ms]")
    columns = [np.datetime_as_string(times, unit="ms", timezone="UTC").tolist()]
    columns += [frame[name].to_numpy("float64").tolist() for name in frame.columns[1:]]
    rows = zip(*columns, strict=True)
    data = list(map(dict, map(zip, repeat(list(frame.columns)), rows)))
    head = envelope.model_dump(mode="json", exclude={"data"})
    return Response(orjson.dumps({**head, "data": data}), media_type="application/json")


def columns_response(
    envelope: BaseModel, names: Sequence[str], ms: np.ndarray, columns: Sequence[np.ndarray]
) -> Response:
    """What frame_response writes for a frame with the column ts (epoch milliseconds `ms`) and
    the float `columns` named `names`, byte for byte, without a frame or a dict per row: each
    column is written once (orjson for the numbers, NaN as null), the text before each row's
    first number (its time between the keys) is built as one byte matrix, and the pieces are
    laced into one list that is joined once, the envelope's head and tail included."""
    head = orjson.dumps(envelope.model_dump(mode="json", exclude={"data"}))
    n = len(ms)
    if n == 0:
        return Response(head[:-1] + b',"data":[]}', media_type="application/json")
    step = 2 * len(columns) + 1  # per row: prefix, number, (key, number)..., "},"
    pieces: list[bytes] = [b"},"] * (n * step)
    pieces[0::step] = _row_prefixes(ms, f'","{names[0]}":'.encode())
    for j, column in enumerate(columns):
        if j:
            pieces[2 * j :: step] = [f',"{names[j]}":'.encode()] * n
        pieces[2 * j + 1 :: step] = _numbers(column)[1:-1].split(b",")
    pieces[0] = head[:-1] + b',"data":[' + pieces[0]
    pieces[-1] = b"}]}"
    return Response(b"".join(pieces), media_type="application/json")


_TS_KEY = b'{"ts":"'
_DIGITS = np.frombuffer(b"0123456789", dtype="u1")
# Epoch milliseconds of years 1000 to 9999, whose ISO text has the fixed width of 24 characters.
_FIXED_WIDTH_MS = (-30_610_224_000_000, 253_402_300_800_000)


def _row_prefixes(ms: np.ndarray, after: bytes) -> list[bytes]:
    """Per row `{"ts":"<time>` + `after`, the time as np.datetime_as_string writes it at
    millisecond precision in UTC (2024-01-01T00:00:00.000Z). Within years 1000 to 9999 (fixed
    width) the digits are computed as one byte matrix, the dates once per distinct day."""
    if ms.min() < _FIXED_WIDTH_MS[0] or ms.max() >= _FIXED_WIDTH_MS[1]:
        times = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")
        return [_TS_KEY + t.encode() + after for t in times.tolist()]
    days, in_day = np.divmod(ms.astype("int64"), 86_400_000)
    distinct, which = np.unique(days, return_inverse=True)
    dates = np.datetime_as_string(distinct.astype("datetime64[D]"), unit="D")
    begin = len(_TS_KEY)
    width = begin + 24 + len(after)
    out = np.empty((len(ms), width), dtype="u1")
    out[:, :begin] = np.frombuffer(_TS_KEY, dtype="u1")
    out[:, begin : begin + 10] = dates.astype("S10").view("u1").reshape(-1, 10)[which]
    for offset, char in ((10, "T"), (13, ":"), (16, ":"), (19, "."), (23, "Z")):
        out[:, begin + offset] = ord(char)
    hours, rest = np.divmod(in_day, 3_600_000)
    minutes, rest = np.divmod(rest, 60_000)
    seconds, millis = np.divmod(rest, 1000)
    for offset, value, digits in (
        (11, hours, 2),
        (14, minutes, 2),
        (17, seconds, 2),
        (20, millis, 3),
    ):
        for k in range(digits):
            out[:, begin + offset + digits - 1 - k] = _DIGITS[value // 10**k % 10]
    out[:, begin + 24 :] = np.frombuffer(after, dtype="u1")
    return out.view(f"S{width}").ravel().tolist()


def _numbers(column: np.ndarray) -> bytes:
    """A float column as a JSON array, as orjson writes a list of floats (NaN as null)."""
    return orjson.dumps(
        np.ascontiguousarray(column, dtype="float64"), option=orjson.OPT_SERIALIZE_NUMPY
    )
