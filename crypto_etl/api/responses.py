"""How the routes write their JSON bodies: a model as it is, a model cached until the data changes,
or a model whose `data` list is rendered from columns (a DataFrame, or arrays written by polars)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
import orjson
import pandas as pd
import polars as pl
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
    """`envelope` as JSON with its `data` list made from `frame` (a UTC datetime column `ts`,
    then float columns), written as columns_response writes arrays. The response models document
    this shape and the tests hold the answers to them."""
    if frame.columns[0] != "ts":
        raise ValueError(f"the first column must be ts, not {frame.columns[0]!r}")
    times = frame.iloc[:, 0].dt.tz_convert(None).to_numpy("datetime64[ms]").astype("int64")
    names = list(frame.columns[1:])
    return columns_response(envelope, names, times, [frame[n].to_numpy("float64") for n in names])


def columns_response(
    envelope: BaseModel, names: Sequence[str], ms: np.ndarray, columns: Sequence[np.ndarray]
) -> Response:
    """What frame_response writes for a frame with the column ts (epoch milliseconds `ms`) and
    the float `columns` named `names`, byte for byte, without a dict per row: polars' JSON writer
    (compiled; floats as orjson writes them, the shortest text that reads back the same, NaN as
    null) writes the rows, and they go into the envelope, whose `data` comes last."""
    head = orjson.dumps(envelope.model_dump(mode="json", exclude={"data"}))
    if len(ms) == 0:
        return Response(head[:-1] + b',"data":[]}', media_type="application/json")
    # Series one by one: a dict of numpy arrays would start a thread pool on every call.
    data = [_iso_times(ms).alias("ts")]
    data += [
        pl.Series(name, np.asarray(column, dtype="float64"), nan_to_null=True)
        for name, column in zip(names, columns, strict=True)
    ]
    rows = pl.DataFrame(data).write_json().encode()
    body = b"".join((head[:-1], b',"data":', rows, b"}"))  # one copy of the rows
    return Response(body, media_type="application/json")


# Epoch milliseconds of years 1000 to 9999, which polars writes as np.datetime_as_string does.
_FOUR_DIGIT_YEARS_MS = (-30_610_224_000_000, 253_402_300_800_000)


def _iso_times(ms: np.ndarray) -> pl.Series:
    """Epoch milliseconds as np.datetime_as_string writes them at millisecond precision in UTC
    (2024-01-01T00:00:00.000Z); years outside 1000 to 9999 (polars writes those differently) go
    through numpy itself."""
    ms = np.asarray(ms, dtype="int64")
    if ms.min() < _FOUR_DIGIT_YEARS_MS[0] or ms.max() >= _FOUR_DIGIT_YEARS_MS[1]:
        times = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")
        return pl.Series(times.tolist(), dtype=pl.String)
    return pl.Series(ms).cast(pl.Datetime("ms")).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
