"""Data quality rules for snapshot tables, with a readable report and a per-row verdict.

Critical rules decide which rows are quarantined (`load`, `run`) and make `validate` exit non-zero;
warnings are reported only. Every rule counts its rows and names a few example coin ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from crypto_etl.formatting import duration
from crypto_etl.shaping.snapshot_table import NUMERIC_COLUMNS, TIMESTAMP_COLUMNS

REQUIRED_COLUMNS = ("id", "symbol", "name", "current_price", "last_updated", "vs_currency")
NON_NEGATIVE_COLUMNS = (
    "current_price",
    "market_cap",
    "fully_diluted_valuation",
    "total_volume",
    "high_24h",
    "low_24h",
    "circulating_supply",
    "total_supply",
    "max_supply",
    "ath",
    "atl",
)
KEY_COLUMNS = ("id", "vs_currency", "last_updated")
RANK_MAX = 2**31 - 1  # what market_snapshots.market_cap_rank (an integer column) holds
EXAMPLES = 5


@dataclass
class RuleResult:
    """One rule's outcome over the table."""

    rule: str
    severity: str  # "critical" or "warning"
    description: str
    failed: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failed == 0


@dataclass
class ValidationReport:
    """All rules' outcomes, plus the rows a critical rule rejects and why."""

    rows: int
    results: list[RuleResult]
    rejected_rule: pd.Series  # index: rejected row labels; value: first critical rule broken
    rejected_reason: pd.Series  # index: rejected row labels; value: every reason, joined

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results if r.severity == "critical")

    @property
    def rejected_count(self) -> int:
        return len(self.rejected_rule)

    def valid_mask(self, index: pd.Index) -> np.ndarray:
        return ~index.isin(self.rejected_rule.index)

    def format(self) -> str:
        """A readable report: one line per rule, with counts and examples."""
        lines = [f"Checked {self.rows} rows against {len(self.results)} rules."]
        for r in self.results:
            mark = "ok  " if r.passed else "FAIL" if r.severity == "critical" else "warn"
            line = f"  [{mark}] {r.rule:<22} {r.description}"
            if not r.passed:
                line += f": {r.failed} row(s)"
                if r.examples:
                    line += f", e.g. {', '.join(r.examples)}"
            lines.append(line)
        verdict = (
            "PASSED: no critical rule failed."
            if self.passed
            else f"FAILED: {self.rejected_count} row(s) break a critical rule "
            f"and would be quarantined; {self.rows - self.rejected_count} row(s) are valid."
        )
        lines.append(verdict)
        return "\n".join(lines)


def _examples(frame: pd.DataFrame, mask: pd.Series) -> list[str]:
    ids = frame.loc[mask, "id"] if "id" in frame else pd.Series(dtype=object)
    shown = ["<no id>" if pd.isna(v) else str(v) for v in ids.head(EXAMPLES * 4)]
    return list(dict.fromkeys(shown))[:EXAMPLES]


def _numeric(series: pd.Series) -> pd.Series:
    if series.dtype == "float64" or str(series.dtype) == "Int64":
        return series.astype("float64")
    return pd.to_numeric(series, errors="coerce").astype("float64")


def _timestamps(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series
    return pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")


def validate_snapshots(
    frame: pd.DataFrame,
    now: datetime,
    stale_after: timedelta = timedelta(hours=6),
    future_tolerance: timedelta = timedelta(minutes=5),
) -> ValidationReport:
    """Run every rule over a snapshot table (as built by transform) at time `now` (UTC)."""
    n = len(frame)
    idx = frame.index
    numbers = {c: _numeric(frame[c]) for c in NUMERIC_COLUMNS if c in frame}
    times = {c: _timestamps(frame[c]) for c in TIMESTAMP_COLUMNS if c in frame}

    checks: list[tuple[RuleResult, pd.Series, str]] = []

    def add(rule: str, severity: str, description: str, mask: pd.Series, reason: str) -> None:
        mask = mask.reindex(idx, fill_value=False).fillna(False).astype(bool)
        result = RuleResult(rule, severity, description, int(mask.sum()), _examples(frame, mask))
        checks.append((result, mask, reason))

    def missing(col: str) -> pd.Series:
        if col not in frame:
            return pd.Series(True, index=idx)
        series = frame[col]
        if series.dtype.kind in "fiumM" or isinstance(series.dtype, pd.DatetimeTZDtype):
            return series.isna()
        return series.isna() | series.astype("str").str.strip().eq("")

    miss_any = pd.Series(False, index=idx)
    missing_names = pd.Series("", index=idx, dtype=object)
    for col in REQUIRED_COLUMNS:
        m = missing(col)
        miss_any |= m
        missing_names = missing_names.where(~m, missing_names + col + " ")
    add(
        "required_fields",
        "critical",
        f"{', '.join(REQUIRED_COLUMNS)} present",
        miss_any,
        "missing required field(s)",
    )

    not_numeric = pd.Series(False, index=idx)
    for col, values in numbers.items():
        raw = frame[col]
        not_numeric |= (values.isna() & raw.notna()) | np.isinf(values.fillna(0))
    add(
        "numeric", "critical", "numeric fields are finite numbers", not_numeric, "non-numeric value"
    )

    bad_time = pd.Series(False, index=idx)
    for col, values in times.items():
        bad_time |= values.isna() & frame[col].notna()
    add("timestamps", "critical", "timestamps are ISO 8601", bad_time, "unparseable timestamp")

    negative = pd.Series(False, index=idx)
    for col in NON_NEGATIVE_COLUMNS:
        if col in numbers:
            negative |= numbers[col] < 0
    add(
        "non_negative",
        "critical",
        "prices, market caps, volumes, supplies >= 0",
        negative,
        "negative price, market cap, volume or supply",
    )

    if "high_24h" in numbers and "low_24h" in numbers:
        inverted = numbers["high_24h"] < numbers["low_24h"]
    else:
        inverted = pd.Series(False, index=idx)
    add("high_low", "critical", "high_24h >= low_24h", inverted, "high_24h below low_24h")

    rank = numbers.get("market_cap_rank", pd.Series(np.nan, index=idx))
    bad_rank = rank.notna() & ((rank < 1) | (rank != rank.round()) | (rank > RANK_MAX))
    add("rank", "critical", "market_cap_rank a positive integer", bad_rank, "bad market_cap_rank")

    last = times.get("last_updated", pd.Series(pd.NaT, index=idx, dtype="datetime64[us, UTC]"))
    limit = pd.Timestamp(now).tz_convert("UTC") + pd.Timedelta(future_tolerance)
    future = last > limit
    add("not_future", "critical", "last_updated not in the future", future, "last_updated ahead")

    # Duplicates among rows that pass every other rule: the first copy is kept.
    broken = pd.Series(False, index=idx)
    for _, mask, _ in checks:
        broken |= mask
    dup = pd.Series(False, index=idx)
    if all(c in frame for c in KEY_COLUMNS) and n:
        key = pd.DataFrame({"id": frame["id"], "vs": frame["vs_currency"], "t": last})
        dup = key[~broken].duplicated(keep="first").reindex(idx, fill_value=False)
    add("unique_key", "critical", "(id, vs_currency, last_updated) unique", dup, "duplicate key")

    if "snapshot_at" in times:
        reference = times["snapshot_at"].fillna(last.max())
    else:
        reference = pd.Series(last.max(), index=idx)
    stale = last < (reference - pd.Timedelta(stale_after))
    add(
        "stale",
        "warning",
        f"last_updated within {duration(stale_after.total_seconds())} of the fetch",
        stale,
        "stale",
    )

    rule_of = pd.Series(None, index=idx, dtype=object)
    reasons = pd.Series("", index=idx, dtype=object)
    for result, mask, reason in checks:
        if result.severity != "critical" or not mask.any():
            continue
        rule_of = rule_of.where(~(mask & rule_of.isna()), result.rule)
        text = reason
        if result.rule == "required_fields":
            text = "missing " + missing_names.str.strip().str.replace(" ", ", ")
            reasons = reasons.where(~mask, reasons + text + "; ")
            continue
        reasons = reasons.where(~mask, reasons + text + "; ")
    rejected = rule_of.notna()
    return ValidationReport(
        rows=n,
        results=[c[0] for c in checks],
        rejected_rule=rule_of[rejected],
        rejected_reason=reasons[rejected].str.rstrip("; "),
    )
