"""Missing stretches in the stored history, per coin: in `market_snapshots` (say the scheduler was
down for an hour) and in `price_history`.

A gap is two consecutive stored points of one coin further apart than GAP_FACTOR times the spacing
expected there: the schedule's cadence for snapshots, the recorded granularity for price points
(the coarser of the two neighbours). The database finds them with a window function, so only the
gaps leave it, however long the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, column, text
from sqlalchemy.exc import SQLAlchemyError

from crypto_etl.errors import DatabaseError, first_line
from crypto_etl.shaping.history_records import GRANULARITY_SECONDS
from crypto_etl.storage.schema import UTCDateTime

GAP_FACTOR = 1.5
DEFAULT_SNAPSHOT_INTERVAL_SECONDS = 300  # the default cadence of `python etl.py schedule`
GAP_TABLES = ("market_snapshots", "price_history")


@dataclass(frozen=True)
class Gap:
    """A missing stretch: nothing stored strictly between `after` and `before`."""

    table: str
    coin_id: str
    vs_currency: str
    after: datetime  # the last stored point before the gap
    before: datetime  # the first stored point after it
    expected_seconds: int

    @property
    def missing(self) -> timedelta:
        return self.before - self.after

    @property
    def missing_points(self) -> int:
        """About how many points the expected spacing puts inside the stretch."""
        return max(1, round(self.missing.total_seconds() / self.expected_seconds) - 1)


def find_gaps(
    engine: Engine,
    table: str,
    vs_currency: str,
    coins: Sequence[str] | None = None,
    since: datetime | None = None,
    snapshot_interval_seconds: int = DEFAULT_SNAPSHOT_INTERVAL_SECONDS,
) -> list[Gap]:
    """Gaps of `table` (market_snapshots or price_history) in one currency, by coin and time,
    for the given coins (all when None) among points stored at or after `since`."""
    if table not in GAP_TABLES:
        raise ValueError(f"no gap rule for table {table!r}")
    postgres = engine.dialect.name == "postgresql"
    ts = "last_updated" if table == "market_snapshots" else "ts"
    if table == "price_history":
        cases = " ".join(f"WHEN '{g}' THEN {s}" for g, s in GRANULARITY_SECONDS.items())
        spacing = f"CASE granularity {cases} ELSE 3600 END"
    else:
        spacing = str(int(snapshot_interval_seconds))
    seconds = (
        "EXTRACT(EPOCH FROM (ts - prev_ts))"
        if postgres
        else "(julianday(ts) - julianday(prev_ts)) * 86400.0"
    )
    filters = ["vs_currency = :vs"]
    if since is not None:
        filters.append(f"{ts} >= :since")
    if coins is not None:
        filters.append("coin_id IN :coins")
    sql = f"""
        SELECT coin_id, vs_currency, prev_ts, ts,
               CASE WHEN spacing > prev_spacing THEN spacing ELSE prev_spacing END AS expected
        FROM (
            SELECT coin_id, vs_currency, {ts} AS ts,
                   LAG({ts}) OVER w AS prev_ts,
                   {spacing} AS spacing,
                   LAG({spacing}) OVER w AS prev_spacing
            FROM {table}
            WHERE {" AND ".join(filters)}
            WINDOW w AS (PARTITION BY coin_id, vs_currency ORDER BY {ts})
        ) pairs
        WHERE prev_ts IS NOT NULL
          AND {seconds} > :factor * (CASE WHEN spacing > prev_spacing
                                          THEN spacing ELSE prev_spacing END)
        ORDER BY coin_id, prev_ts
    """
    stmt = text(sql).columns(
        column("coin_id"),
        column("vs_currency"),
        column("prev_ts", UTCDateTime()),
        column("ts", UTCDateTime()),
        column("expected"),
    )
    params: dict = {"vs": vs_currency, "factor": GAP_FACTOR}
    if since is not None:
        stmt = stmt.bindparams(bindparam("since", type_=UTCDateTime()))
        params["since"] = since
    if coins is not None:
        if not coins:
            return []
        stmt = stmt.bindparams(bindparam("coins", expanding=True))
        params["coins"] = list(coins)
    try:
        with engine.connect() as conn:
            rows = conn.execute(stmt, params).all()
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot look for gaps in {table}: {first_line(exc)}") from exc
    return [
        Gap(table, coin, vs, after, before, int(expected))
        for coin, vs, after, before, expected in rows
    ]
