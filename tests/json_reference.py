"""The reference the API's array writer (crypto_etl.api.responses.columns_response, polars) is held
to: a dict per row dumped by orjson, as the API wrote its frames before. Times as
np.datetime_as_string at millisecond precision in UTC, NaN as null."""

from __future__ import annotations

from itertools import repeat

import numpy as np
import orjson
import pandas as pd
from pydantic import BaseModel


def reference_body(envelope: BaseModel, frame: pd.DataFrame) -> bytes:
    times = frame.iloc[:, 0].dt.tz_convert(None).to_numpy("datetime64[ms]")
    columns = [np.datetime_as_string(times, unit="ms", timezone="UTC").tolist()]
    columns += [frame[name].to_numpy("float64").tolist() for name in frame.columns[1:]]
    rows = zip(*columns, strict=True)
    data = list(map(dict, map(zip, repeat(list(frame.columns)), rows)))
    head = envelope.model_dump(mode="json", exclude={"data"})
    return orjson.dumps({**head, "data": data})
