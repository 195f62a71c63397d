"""What the CLI charts read: the snapshot CSV (cleaned to the rows a chart can use), the coin a user
names, and the history and candles the database holds for the CSV's coins.

The database is optional here: when it is missing, unreachable or has no schema yet, the charts are
drawn from the CSV alone and a log line says why. It is only read, never created or migrated.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crypto_etl.analytics import candles as candle_math
from crypto_etl.analytics import market, series
from crypto_etl.errors import InputFileError, UnknownCoinError, first_line
from crypto_etl.shaping.snapshot_table import read_snapshot_csv
from crypto_etl.storage import queries
from crypto_etl.storage.engine import describe, has_table, make_engine

log = logging.getLogger(__name__)

# A chart needs these to say anything about a coin.
REQUIRED = ("id", "symbol", "name", "current_price", "last_updated")
NUMBERS = (
    "current_price",
    "market_cap",
    "total_volume",
    "high_24h",
    "low_24h",
    "price_change_24h",
    "price_change_percentage_24h",
)
MAX_CANDLES = 120
# Fewer candles than this from a source means it has no real history for the coin.
MIN_CANDLES = 5
EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SnapshotTable:
    """A snapshot CSV ready for charts: every usable row, and the newest row of each coin."""

    path: Path
    rows: pd.DataFrame
    latest: pd.DataFrame
    vs_currency: str

    @property
    def snapshots(self) -> int:
        return int(self.rows["snapshot_at"].nunique())

    @property
    def as_of(self) -> pd.Timestamp:
        return self.latest["last_updated"].max()


@dataclass(frozen=True)
class Candles:
    """Candles of one coin and where they come from, for the chart's title."""

    frame: pd.DataFrame
    source: str  # a phrase such as "CoinGecko 4h candles from the database"
    total: int  # candles available before keeping the newest MAX_CANDLES


def read_chart_csv(path: str | Path) -> SnapshotTable:
    """The CSV's rows that have the fields a chart needs, in one currency, numbers as floats.

    Rows that validation would quarantine (a price that is not a number, a missing id) are left
    out; a file with no usable row is an error."""
    path = Path(path)
    frame = read_snapshot_csv(path)
    if frame.empty:
        raise InputFileError(f"CSV file {path} has a header but no rows")
    for column in NUMBERS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("last_updated", "snapshot_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce")
    usable = frame.dropna(subset=list(REQUIRED))
    usable = usable[usable["current_price"] > 0]
    if usable.empty:
        raise InputFileError(
            f"CSV file {path} has no usable row (each needs id, symbol, name, a positive "
            "current_price and last_updated); check it with `python etl.py validate`"
        )
    currencies = usable["vs_currency"].fillna("usd").str.lower()
    currency = currencies.value_counts().index[0]
    if currencies.nunique() > 1:
        log.warning("%s mixes currencies; charting the %s rows only", path, currency.upper())
    usable = usable[currencies == currency].reset_index(drop=True)
    usable["snapshot_at"] = usable["snapshot_at"].fillna(usable["last_updated"])
    return SnapshotTable(path, usable, market.latest_per_coin(usable), currency)


def find_coin(table: SnapshotTable, query: str) -> pd.Series:
    """The newest row of the coin whose id, symbol or name is `query`, ignoring case (an id match
    first, then a name, then a symbol; a symbol shared by several coins means the largest)."""
    wanted = str(query).strip().lower()
    latest = table.latest
    for column in ("id", "name", "symbol"):
        hits = latest[latest[column].str.lower() == wanted]
        if not hits.empty:
            return hits.iloc[0]  # latest is sorted by market cap, largest first
    known: dict[str, str] = {}
    for coin_id, symbol, name in latest[["id", "symbol", "name"]].itertuples(index=False):
        for key in (coin_id, symbol, name):
            known.setdefault(key.lower(), coin_id)
    close = difflib.get_close_matches(wanted, list(known), n=8, cutoff=0.6)
    suggestions = list(dict.fromkeys(known[key] for key in close))[:5]
    if suggestions:
        hint = f"did you mean {', '.join(suggestions)}?"
    else:
        hint = f"it holds {len(latest)} coins, e.g. {', '.join(latest['id'].head(5))}"
    raise UnknownCoinError(
        f"no coin {query!r} in {table.path} (matched by id, symbol or name); {hint}"
    )


def open_database(url: str) -> Engine | None:
    """An engine on the pipeline's database when it exists and has the schema, else None (with a
    log line): charts then use the CSV alone. A missing SQLite file is not created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or not Path(database).expanduser().is_file():
            log.info("no database file at %s; charting the CSV only", database)
            return None
    try:
        engine = make_engine(url)
        if not has_table(engine, "market_snapshots"):
            log.warning("%s has no schema yet; charting the CSV only", describe(engine))
            engine.dispose()
            return None
    except (SQLAlchemyError, OSError) as exc:
        log.warning("cannot read the database (%s); charting the CSV only", first_line(exc))
        return None
    return engine


def snapshot_points(table: SnapshotTable, coin_ids: list[str]) -> dict[str, pd.DataFrame]:
    """Each coin's price points in the CSV itself (one per snapshot)."""
    rows = table.rows[table.rows["id"].isin(coin_ids)]
    points = rows.rename(columns={"last_updated": "ts", "current_price": "price"})
    return {
        coin: series.combine_points(group)
        for coin, group in points.groupby("id", sort=False)
        if len(group) > 0
    }


def history_points(
    engine: Engine | None, table: SnapshotTable, coin_ids: list[str], days: int
) -> tuple[dict[str, pd.DataFrame], str]:
    """Price points of `coin_ids` over the `days` before the CSV's newest snapshot: the
    database's market snapshots and price history merged with the CSV's own snapshots. Returns the
    points and a phrase naming the sources used."""
    end = table.as_of.to_pydatetime()
    start = end - pd.Timedelta(days=days).to_pytimedelta()
    from_csv = snapshot_points(table, coin_ids)
    from_db: dict[str, pd.DataFrame] = {}
    if engine is not None:
        try:
            with Session(engine) as session:
                from_db = queries.history_points(session, coin_ids, table.vs_currency, start, end)
        except SQLAlchemyError as exc:
            log.warning("cannot read the price history (%s); using the CSV only", first_line(exc))
    merged = {}
    for coin in coin_ids:
        parts = [p for p in (from_csv.get(coin), from_db.get(coin)) if p is not None]
        if parts:
            points = series.combine_points(*parts)
            merged[coin] = points[points["ts"] >= pd.Timestamp(start)]
    source = "database history and the CSV's snapshots" if from_db else "the CSV's snapshots"
    return merged, source


def _stored_ohlc(engine: Engine, coin_id: str, vs_currency: str) -> Candles | None:
    """CoinGecko's stored candles of the interval that best fills a chart: the one with the most
    candles up to MAX_CANDLES, else the one with the fewest."""
    with Session(engine) as session:
        counts = queries.ohlc_interval_counts(session, coin_id, vs_currency)
        if not counts:
            return None
        fitting = [(n, i) for i, n in counts if n <= MAX_CANDLES]
        count, interval = max(fitting) if fitting else min((n, i) for i, n in counts)
        frame = queries.ohlc_candles(session, coin_id, vs_currency, interval, EARLIEST, LATEST)
    return Candles(frame, f"CoinGecko {interval} candles from the database", count)


def _history_candles(engine: Engine, coin_id: str, vs_currency: str) -> Candles | None:
    with Session(engine) as session:
        points = queries.history_points(session, [coin_id], vs_currency, EARLIEST, LATEST)
    points = points.get(coin_id)
    if points is None or len(points) < 2:
        return None
    interval = candle_math.candle_interval(points["ts"], MAX_CANDLES)
    frame = candle_math.candles_from_points(points, interval)
    return Candles(frame, f"{interval} candles built from the database's price history", len(frame))


def coin_candles(engine: Engine | None, table: SnapshotTable, coin: pd.Series) -> Candles:
    """The best candles for one coin: CoinGecko's stored candles, else candles built from the
    stored price history, else one 24h candle per snapshot of the coin in the CSV. A source needs
    MIN_CANDLES candles to win; when none has that many, the one with the most does."""
    found: list[Candles] = []
    if engine is not None:
        for build in (_stored_ohlc, _history_candles):
            try:
                candles = build(engine, coin["id"], table.vs_currency)
            except SQLAlchemyError as exc:
                log.warning("cannot read stored candles (%s); using the CSV", first_line(exc))
                break
            if candles is not None and not candles.frame.empty:
                found.append(candles)
    rows = table.rows[table.rows["id"] == coin["id"]]
    frame = candle_math.candles_from_snapshots(rows)
    found.append(
        Candles(
            frame,
            f"24h candles (each the 24 h before a snapshot) from {table.path.name}",
            len(frame),
        )
    )
    best = next((c for c in found if c.total >= MIN_CANDLES), None)
    best = best or max(found, key=lambda c: c.total)  # max keeps the first of equals
    return Candles(best.frame.tail(MAX_CANDLES).reset_index(drop=True), best.source, best.total)
