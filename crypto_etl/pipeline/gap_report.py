"""The `gaps` command's report: the missing stretches of market_snapshots and price_history per
coin, what `backfill` can do about each, and the backfill command that fills them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from crypto_etl.coingecko.history import earliest_served
from crypto_etl.formatting import duration
from crypto_etl.settings import Settings
from crypto_etl.storage.gaps import GAP_TABLES, Gap, find_gaps
from crypto_etl.storage.history import price_coverage


@dataclass(frozen=True)
class GapReport:
    gaps: list[Gap]  # market_snapshots first, then price_history; by coin and time
    notes: list[str]  # per gap: what backfill can do about it
    vs_currency: str
    coins: list[str] | None  # None: all coins
    days: int | None  # None: the whole history
    now: datetime

    def fill_command(self) -> str | None:
        """The backfill command that fills what CoinGecko still serves, or None without gaps."""
        if not self.gaps:
            return None
        coins = sorted({gap.coin_id for gap in self.gaps})
        reach = math.ceil((self.now - min(gap.after for gap in self.gaps)) / timedelta(days=1))
        return (
            f"python etl.py backfill --coins={','.join(coins)} --days={reach} "
            f"--vs_currency={self.vs_currency}"
        )

    def format(self) -> str:
        """The report as the command line prints it."""
        scope = f"{len(self.coins)} coin(s)" if self.coins else "all coins"
        window = f" in the last {self.days} days" if self.days else ""
        if not self.gaps:
            return (
                f"no gaps in market_snapshots or price_history "
                f"({self.vs_currency}, {scope}{window})"
            )
        coins_with_gaps = {gap.coin_id for gap in self.gaps}
        return (
            f"{format_gaps(self.gaps, self.notes)}\n"
            f"{len(self.gaps)} gap(s) in {len(coins_with_gaps)} coin(s) "
            f"({self.vs_currency}, {scope}{window}); to fill what CoinGecko still serves: "
            f"{self.fill_command()}"
        )


def gap_report(
    engine: Engine,
    settings: Settings,
    coins: list[str] | None,
    vs_currency: str,
    days: int | None,
    snapshot_interval_seconds: int,
    now: datetime,
) -> GapReport:
    """The gaps of `coins` (all when None) in the last `days` (all when None) at `now`."""
    since = None if days is None else now - timedelta(days=days)
    found = {
        table: find_gaps(engine, table, vs_currency, coins, since, snapshot_interval_seconds)
        for table in GAP_TABLES
    }
    servable_from = earliest_served(now, settings)
    listed = [gap for table in GAP_TABLES for gap in found[table]]
    notes = [_note(engine, gap, found["price_history"], servable_from) for gap in listed]
    return GapReport(listed, notes, vs_currency, coins, days, now)


def _note(engine: Engine, gap: Gap, price_gaps: Sequence[Gap], servable_from: datetime | None):
    """What backfill can do about a gap: CoinGecko serves price history back to `servable_from`
    (None: any age)."""
    if servable_from is not None and gap.before <= servable_from:
        return "older than the plan serves (365 days)"
    if gap.table == "price_history":
        return "backfill fills it"
    coverage = price_coverage(engine, gap.coin_id, gap.vs_currency)
    overlapped = any(
        p.coin_id == gap.coin_id and p.after < gap.before and p.before > gap.after
        for p in price_gaps
    )
    if coverage and coverage.first <= gap.after and coverage.last >= gap.before and not overlapped:
        return "covered in price_history"
    return "backfill fills it in price_history"


def format_gaps(gaps: Sequence[Gap], notes: Sequence[str]) -> str:
    """A plain-text table, one gap per line, with a note on what backfill can do about each."""
    header = ("table", "coin", "currency", "after (UTC)", "before (UTC)", "missing", "every", "")
    lines = [
        (
            g.table,
            g.coin_id,
            g.vs_currency,
            f"{g.after:%Y-%m-%d %H:%M}",
            f"{g.before:%Y-%m-%d %H:%M}",
            f"{duration(g.missing.total_seconds())} (~{g.missing_points} pts)",
            duration(g.expected_seconds),
            note,
        )
        for g, note in zip(gaps, notes, strict=True)
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *lines]
    )
