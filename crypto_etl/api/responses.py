"""How the routes write their JSON bodies: a model as it is, a model cached until the data changes,
or a model whose `data` list is rendered from a DataFrame column by column."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from itertools import chain, repeat

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
    column is written once (orjson for the numbers, NaN as null), then the rows are laced
    together from the pieces."""
    head = orjson.dumps(envelope.model_dump(mode="json", exclude={"data"}))
    if len(ms) == 0:
        return Response(head[:-1] + b',"data":[]}', media_type="application/json")
    times = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")
    texts = [times.tolist()]
    texts += [_numbers(column)[1:-1].decode().split(",") for column in columns]
    # {"ts":"<time>","price":<number>,"market_cap":<number>,...}: the text before each value
    keys = ['{"ts":"', f'","{names[0]}":', *(f',"{name}":' for name in names[1:])]
    pieces = [item for pair in zip(map(repeat, keys), texts, strict=True) for item in pair]
    rows = "".join(chain.from_iterable(zip(*pieces, repeat("},"))))
    body = b"".join((head[:-1], b',"data":[', rows[:-1].encode(), b"]}"))
    return Response(body, media_type="application/json")


def _numbers(column: np.ndarray) -> bytes:
    """A float column as a JSON array, as orjson writes a list of floats (NaN as null)."""
    return orjson.dumps(
        np.ascontiguousarray(column, dtype="float64"), option=orjson.OPT_SERIALIZE_NUMPY
    )
