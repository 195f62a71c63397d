"""Crypto ETL command line: CoinGecko market data into a database, with its full history.

python etl.py --help
python etl.py run
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path

import fire

from crypto_etl.errors import ETLError, InputFileError
from crypto_etl.settings import Settings, load_settings

log = logging.getLogger("etl")
USAGE_EXIT = 2


class UsageError(ETLError):
    """A command-line argument is invalid."""

    exit_code = USAGE_EXIT


def setup_logging(level: str, log_file: str | None = None) -> None:
    """Logs go to stderr and, when LOG_FILE is set, to that file too."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        handlers=handlers,
        force=True,
    )
    # Alembic reports every migration context at INFO; that is noise on each command.
    for name in ("alembic", "alembic.runtime.migration", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def command(func):
    """Turn expected failures into one line on stderr and a non-zero exit status; the traceback
    is shown only with LOG_LEVEL=DEBUG."""

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        try:
            result = func(self, *args, **kwargs)
        except ETLError as exc:
            log.debug("traceback", exc_info=True)
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)
        except Exception as exc:
            log.debug("traceback", exc_info=True)
            detail = str(exc).splitlines()[0] if str(exc) else ""
            print(
                f"error: unexpected {type(exc).__name__}: {detail} "
                "(run with LOG_LEVEL=DEBUG to see the traceback)",
                file=sys.stderr,
            )
            sys.exit(1)
        return result

    return wrapper


def _positive_int(name: str, value, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"--{name} must be a whole number >= 1, got {value!r}")
    return value


def _currency(value, default: str) -> str:
    if value is None:
        return default
    text = str(value).strip().lower()
    if not text.isalnum():
        raise UsageError(f"--vs_currency must be a currency code such as usd, got {value!r}")
    return text


def _coin_ids(value) -> list[str] | None:
    """--coins as fire hands it over: None, "bitcoin", "bitcoin,ethereum", a tuple, or an int."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise UsageError("--coins needs coin ids, e.g. --coins=bitcoin,ethereum")
    items = value if isinstance(value, list | tuple) else [value]
    ids: list[str] = []
    for item in items:
        for part in str(item).split(","):
            coin = part.strip().lower()
            if any(ch.isspace() or ch in "/?#&%" for ch in coin):
                raise UsageError(f"--coins: {coin!r} is not a CoinGecko coin id")
            if coin and coin not in ids:
                ids.append(coin)
    if not ids:
        raise UsageError("--coins needs coin ids, e.g. --coins=bitcoin,ethereum")
    return ids


class BackfillIncomplete(ETLError):
    """Some coins could not be fetched; the others were stored."""


@contextlib.contextmanager
def _coin_progress(total: int):
    """A progress bar over coins on a terminal; elsewhere the per-coin log lines say enough."""
    if not sys.stderr.isatty():
        yield lambda result: None
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with tqdm(total=total, unit="coin", file=sys.stderr) as bar, logging_redirect_tqdm():

        def advance(result) -> None:
            bar.set_postfix_str(result.coin_id + (" failed" if result.error else ""))
            bar.update(1)

        yield advance


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM stops a long command like Ctrl-C does, so its run is recorded as cancelled."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _path(name: str, value) -> Path:
    if value is None or isinstance(value, bool) or str(value).strip() == "":
        raise UsageError(f"--{name} needs a file path")
    return Path(str(value))


class CryptoETLPipeline:
    """Collect CoinGecko market data and keep its full history in a database.

    Settings come from environment variables or a .env file (see .env.example).
    """

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._engine = None
        self._ohlc_note: str | None = None

    # -- shared plumbing -------------------------------------------------------------------
    def _config(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
            setup_logging(self._settings.log_level, self._settings.log_file)
        return self._settings

    def _db(self):
        if self._engine is None:
            from crypto_etl.storage.engine import init_db, make_engine

            self._engine = make_engine(self._config().database_url)
            init_db(self._engine)
        return self._engine

    def _client(self):
        from crypto_etl.coingecko.client import CoinGeckoClient

        return CoinGeckoClient(self._config())

    def _record(self, command_name: str, **fields):
        """Journal a single step in etl_runs; a step that does not need the database still
        works when the database is unreachable (the failure to record is logged)."""
        from crypto_etl.storage.runs import finish_run, start_run

        try:
            engine = self._db()
            run_id = start_run(engine, command_name, fields.pop("vs_currency", None))
            finish_run(engine, run_id, fields.pop("status", "success"), **fields)
        except ETLError as exc:
            log.warning("could not record the %s step in etl_runs: %s", command_name, exc)

    # -- commands ------------------------------------------------------------------------------
    @command
    def extract(self, save_path: str = "raw.json", top_n: int | None = None, vs_currency=None):
        """Fetch the top coins by market cap from CoinGecko into a raw JSON file, unmodified.

        Example: python etl.py extract --save_path=raw.json --top_n=50 --vs_currency=usd
        """
        from crypto_etl.pipeline.snapshot import save_raw
        from crypto_etl.storage.runs import utcnow

        settings = self._config()
        path = _path("save_path", save_path)
        top = _positive_int("top_n", top_n, settings.top_n)
        currency = _currency(vs_currency, settings.vs_currency)
        with self._client() as client:
            rows = client.fetch_markets(top, currency)
        save_raw(rows, path, utcnow(), vs_currency=currency, top_n=top)
        self._record("extract", vs_currency=currency, rows_extracted=len(rows), source=str(path))
        print(f"extracted {len(rows)} coins ({currency}) into {path}")

    @command
    def transform(
        self,
        input_path: str = "raw.json",
        output_path: str = "crypto_top_50.csv",
        vs_currency=None,
        snapshot_at: str | None = None,
    ):
        """Turn a raw /coins/markets JSON dump into the snapshot CSV (stable columns, UTC times).

        Example: python etl.py transform --input_path=raw.json --output_path=crypto_top_50.csv
        """
        from crypto_etl.pipeline.snapshot import transform_file

        settings = self._config()
        source = _path("input_path", input_path)
        target = _path("output_path", output_path)
        when = None
        if snapshot_at is not None:
            try:
                when = datetime.fromisoformat(str(snapshot_at).replace("Z", "+00:00"))
            except ValueError:
                raise UsageError(
                    f"--snapshot_at must be an ISO 8601 time, got {snapshot_at!r}"
                ) from None
            if when.tzinfo is None:
                raise UsageError("--snapshot_at needs a timezone, e.g. 2025-01-01T00:00:00Z")
        currency = None if vs_currency is None else _currency(vs_currency, settings.vs_currency)
        rows = transform_file(source, target, currency, when, settings.vs_currency)
        self._record("transform", rows_extracted=rows, source=str(source))
        print(f"transformed {rows} rows from {source} into {target}")

    @command
    def validate(self, csv_path: str = "crypto_top_50.csv"):
        """Check a snapshot CSV against the data quality rules; exits 1 if a critical rule fails.

        Example: python etl.py validate --csv_path=crypto_top_50.csv
        """
        from crypto_etl.pipeline.snapshot import validate_file
        from crypto_etl.storage.runs import utcnow

        settings = self._config()
        path = _path("csv_path", csv_path)
        report = validate_file(path, settings, utcnow())
        print(report.format())
        self._record(
            "validate",
            status="success" if report.passed else "failed",
            rows_extracted=report.rows,
            rows_rejected=report.rejected_count,
            source=str(path),
        )
        if not report.passed:
            from crypto_etl.errors import ValidationFailed

            raise ValidationFailed(
                f"{report.rejected_count} of {report.rows} rows in {path} break a critical rule"
            )

    @command
    def load(self, csv_path: str = "crypto_top_50.csv"):
        """Validate and load a snapshot CSV into the database, all or nothing.

        Rows that break a critical rule go to rejected_rows; rows already stored are skipped.

        Example: python etl.py load --csv_path=crypto_top_50.csv
        """
        from crypto_etl.pipeline.snapshot import load_file
        from crypto_etl.storage.runs import finish_run, start_run, utcnow

        settings = self._config()
        path = _path("csv_path", csv_path)
        if not path.is_file():
            raise InputFileError(
                f"CSV file {path} does not exist; create it with `python etl.py transform`"
            )
        engine = self._db()
        run_id = start_run(engine, "load", source=str(path))
        try:
            result, _ = load_file(engine, path, settings, run_id, utcnow())
        except BaseException as exc:
            finish_run(engine, run_id, "failed", error_message=str(exc).splitlines()[0][:2000])
            raise
        status = "success" if result.rejected == 0 else "partial"
        finish_run(
            engine,
            run_id,
            status,
            rows_extracted=result.rows_in,
            rows_loaded=result.loaded,
            rows_rejected=result.rejected,
            rows_skipped=result.skipped,
        )
        print(
            f"loaded {result.loaded} new rows from {path} ({result.skipped} already stored, "
            f"{result.rejected} quarantined in rejected_rows); run {run_id}"
        )

    @command
    def run(self, top_n: int | None = None, vs_currency=None):
        """Extract, transform, validate and load one snapshot, recorded as one run.

        Raw payloads are kept in data/raw/ and CSVs in data/processed/ for replay.
        Example: python etl.py run --top_n=100
        """
        summary = self._run_once(top_n, vs_currency)
        result = summary.result
        print(
            f"run {summary.run_id} {summary.status}: {summary.extracted} extracted, "
            f"{result.loaded} loaded, {result.skipped} already stored, "
            f"{result.rejected} quarantined"
        )
        if self._ohlc_note:
            print(self._ohlc_note)

    def _run_once(self, top_n, vs_currency, should_stop=lambda: False):
        from crypto_etl.pipeline.snapshot import run_once

        settings = self._config()
        top = _positive_int("top_n", top_n, settings.top_n)
        currency = _currency(vs_currency, settings.vs_currency)
        engine = self._db()
        self._ohlc_note = None
        with self._client() as client:

            def keep_ohlc_current(run_id: int) -> None:
                self._ohlc_note = _keep_ohlc_current(
                    engine, client, settings, currency, should_stop
                )

            after_load = keep_ohlc_current if settings.ohlc_top_n > 0 else None
            return run_once(
                engine, client, settings, top, currency, should_stop, after_load=after_load
            )

    @command
    def schedule(
        self,
        interval_seconds: float = 300,
        top_n: int | None = None,
        vs_currency=None,
        max_runs: int | None = None,
    ):
        """Run the pipeline every interval_seconds until stopped (Ctrl-C or SIGTERM).

        A failed run is logged and retried at the next tick; a stop waits for the current step.
        Example: python etl.py schedule --interval_seconds=300
        """
        from crypto_etl.pipeline.scheduler import StopFlag, run_every
        from crypto_etl.pipeline.snapshot import Cancelled

        self._config()
        if isinstance(interval_seconds, bool) or not isinstance(interval_seconds, int | float):
            raise UsageError(f"--interval_seconds must be a number, got {interval_seconds!r}")
        if interval_seconds <= 0:
            raise UsageError(f"--interval_seconds must be > 0, got {interval_seconds!r}")
        if max_runs is not None:
            max_runs = _positive_int("max_runs", max_runs, 1)
        stop = StopFlag()
        stop.install()
        self._db()

        def job() -> None:
            try:
                self._run_once(top_n, vs_currency, should_stop=stop.is_set)
            except Cancelled:
                log.info("run cancelled between steps")

        log.info("scheduling a run every %s seconds", interval_seconds)
        runs, failures = run_every(job, float(interval_seconds), stop, max_runs=max_runs)
        reason = f" ({stop.signal_name})" if stop.signal_name else ""
        print(f"schedule stopped{reason} after {runs} run(s), {failures} failed")

    # -- charts ----------------------------------------------------------------------------------
    def _chart_table(self, csv_path):
        from crypto_etl.reports.inputs import read_chart_csv

        self._config()
        return read_chart_csv(_path("csv_path", csv_path))

    def _chart_database(self):
        from crypto_etl.reports.inputs import open_database

        return open_database(self._config().database_url)

    @command
    def visualize(self, csv_path: str = "crypto_top_50.csv", output_dir: str = "charts"):
        """Draw market share, price, 24h move and market cap vs volume charts of a CSV as PNGs.

        Example: python etl.py visualize --csv_path=crypto_top_50.csv --output_dir=charts
        """
        from crypto_etl.reports import charts

        table = self._chart_table(csv_path)
        folder = _path("output_dir", output_dir)
        latest, currency = table.latest, table.vs_currency
        source = _csv_source(table)
        written = [
            charts.market_share_chart(latest, currency, source, folder / "market_share.png"),
            charts.price_chart(latest, currency, source, folder / "prices.png"),
            charts.change_chart(latest, source, folder / "price_change_24h.png"),
            charts.cap_volume_chart(latest, currency, source, folder / "market_cap_vs_volume.png"),
        ]
        for path in written:
            print(path)

    @command
    def candlestick(
        self,
        csv_path: str = "crypto_top_50.csv",
        coin_name: str | None = None,
        save_path: str | None = None,
    ):
        """Draw a coin's candles as a PNG, from the database's history or else the CSV's snapshots.

        --coin_name matches a coin id, symbol or name, ignoring case.
        Example: python etl.py candlestick --coin_name=bitcoin --save_path=bitcoin_candlestick.png
        """
        from crypto_etl.reports import charts
        from crypto_etl.reports.inputs import coin_candles, find_coin

        if coin_name is None or isinstance(coin_name, bool) or str(coin_name).strip() == "":
            raise UsageError(
                "--coin_name needs a coin id, symbol or name, e.g. --coin_name=bitcoin"
            )
        table = self._chart_table(csv_path)
        coin = find_coin(table, str(coin_name))
        target = _path("save_path", save_path or f"{coin['id']}_candlestick.png")
        candles = coin_candles(self._chart_database(), table, coin)
        if candles.frame.empty:
            raise InputFileError(
                f"no candles for {coin['id']}: the database has no history of it and its rows in "
                f"{table.path} lack current_price, price_change_24h, high_24h or low_24h"
            )
        label = charts.coin_label(coin)
        currency = table.vs_currency
        charts.candlestick_chart(
            candles.frame, label, currency, candles.source, candles.total, target
        )
        shown = len(candles.frame)
        count = f"{shown}" if shown == candles.total else f"newest {shown} of {candles.total}"
        log.info("candlestick of %s: %s candles, %s", coin["id"], count, candles.source)
        print(target)

    @command
    def correlation(
        self,
        csv_path: str = "crypto_top_50.csv",
        save_path: str = "correlation_plot.png",
        top_n: int = 10,
        days: int = 30,
    ):
        """Draw a heatmap of return correlations as a PNG (market cap vs volume without history).

        Uses the database's history and the CSV's snapshots of the top_n coins over `days`.
        Example: python etl.py correlation --csv_path=crypto_top_50.csv --save_path=corr.png
        """
        from crypto_etl.analytics import series as analytics
        from crypto_etl.reports import charts
        from crypto_etl.reports.inputs import history_points

        top = _positive_int("top_n", top_n, 10)
        window_days = _positive_int("days", days, 30)
        if top < 2:
            raise UsageError("--top_n must be at least 2 for a correlation")
        table = self._chart_table(csv_path)
        target = _path("save_path", save_path)
        latest = table.latest.dropna(subset=["market_cap"]).head(top)
        points, source = history_points(
            self._chart_database(), table, list(latest["id"]), window_days
        )
        found = analytics.returns_correlation(points)
        if found is None:
            log.info("no price history for a correlation: drawing market cap vs 24h volume")
            charts.cap_volume_chart(
                table.latest,
                table.vs_currency,
                _csv_source(table),
                target,
                title="No price history for a correlation: market cap vs 24h volume (log-log)",
            )
        else:
            interval, matrix, observations = found
            labels_by_id = dict(zip(latest["id"], latest["symbol"].str.upper(), strict=True))
            coins = [c for c in latest["id"] if c in matrix.columns]
            start = min(points[c]["ts"].min() for c in coins)
            end = max(points[c]["ts"].max() for c in coins)
            window = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
            left_out = len(latest) - len(coins)
            if left_out:
                window += f" ({left_out} coins with too little history left out)"
            log.info(
                "correlation of %s returns of %d coins from %s",
                charts.INTERVAL_WORDS[interval],
                len(coins),
                source,
            )
            charts.correlation_chart(
                matrix.loc[coins, coins],
                [labels_by_id[c] for c in coins],
                interval,
                observations,
                window,
                source,
                target,
            )
        print(target)

    @command
    def backfill(self, coins=None, days: int = 90, vs_currency=None, top_n: int | None = None):
        """Fill price_history and ohlc from CoinGecko history: incremental, resumable, fills gaps.

        Per coin only what is not stored yet is fetched (after the last point, before the first,
        and gaps), at the finest granularity the plan serves. Without --coins: the current top
        --top_n coins (TOP_N). Keyless and demo plans reach 365 days back. Coins that fail are
        listed at the end and the exit status is 1; the others are stored. Run it again to resume.
        Example: python etl.py backfill --coins=bitcoin,ethereum --days=90 --vs_currency=usd
        """
        from crypto_etl.pipeline.backfill import backfill, backfill_start, history_now

        settings = self._config()
        days = _positive_int("days", days, 90)
        currency = _currency(vs_currency, settings.vs_currency)
        ids = _coin_ids(coins)
        top = _positive_int("top_n", top_n, settings.top_n)
        now = history_now()
        start, cut = backfill_start(days, now, settings)
        if cut:
            print(
                f"warning: --days={days} reaches further back than the 365 days that keyless and "
                f"demo CoinGecko plans serve; fetching from {start:%Y-%m-%d %H:%M} UTC "
                "(a pro key with COINGECKO_API_PLAN=pro reaches further)",
                file=sys.stderr,
            )
        engine = self._db()
        with _sigterm_interrupts(), self._client() as client:
            if ids is None:
                ids = [row["id"] for row in client.fetch_markets(top, currency)]
                log.info("backfilling the top %d coins by market cap", len(ids))
            with _coin_progress(len(ids)) as on_coin:
                report = backfill(
                    engine, client, settings, ids, currency, start, now, on_coin=on_coin
                )
        stored = len(report.coins) - len(report.failed)
        print(
            f"backfill run {report.run_id} {report.status}: {stored} of {len(ids)} coins "
            f"({currency}) since {start:%Y-%m-%d %H:%M} UTC, "
            f"{report.total('requests')} request(s)\n"
            f"  price_history: {report.total('points')} points received, "
            f"{report.total('points_new')} new\n"
            f"  ohlc: {report.total('candles')} candles received, {report.total('candles_new')} new"
        )
        if report.failed:
            print(f"failed coins ({len(report.failed)}):")
            for result in report.failed:
                print(f"  {result.coin_id}: {result.error}")
            names = ", ".join(r.coin_id for r in report.failed)
            raise BackfillIncomplete(
                f"{len(report.failed)} of {len(ids)} coins failed ({names}); the others are "
                "stored; run the same command again to retry"
            )

    @command
    def gaps(
        self,
        coins=None,
        vs_currency=None,
        days: int | None = None,
        interval_seconds: int | None = None,
    ):
        """List missing stretches per coin in market_snapshots and price_history.

        A gap is two stored points further apart than 1.5 times the expected spacing: the
        snapshot cadence (--interval_seconds, default 300 like schedule) for market_snapshots,
        the recorded granularity for price_history. --days limits the look-back. The last column
        says whether `backfill` can fill the stretch (snapshots themselves cannot be fetched
        again; backfill fills price_history for that time).
        Example: python etl.py gaps --coins=bitcoin,ethereum --days=30
        """
        from crypto_etl.pipeline.backfill import backfill_start, history_now
        from crypto_etl.storage.gaps import (
            DEFAULT_SNAPSHOT_INTERVAL_SECONDS,
            GAP_TABLES,
            find_gaps,
            format_gaps,
        )

        settings = self._config()
        ids = _coin_ids(coins)
        currency = _currency(vs_currency, settings.vs_currency)
        cadence = _positive_int(
            "interval_seconds", interval_seconds, DEFAULT_SNAPSHOT_INTERVAL_SECONDS
        )
        now = history_now()
        since = None
        if days is not None:
            since = now - timedelta(days=_positive_int("days", days, 1))
        engine = self._db()
        found = {
            table: find_gaps(engine, table, currency, ids, since, cadence) for table in GAP_TABLES
        }
        servable_from, _ = backfill_start(100 * 365, now, settings)
        notes = [
            _gap_note(engine, gap, found["price_history"], servable_from)
            for table in GAP_TABLES
            for gap in found[table]
        ]
        listed = [gap for table in GAP_TABLES for gap in found[table]]
        scope = f"{len(ids)} coin(s)" if ids else "all coins"
        window = f" in the last {days} days" if since else ""
        if not listed:
            print(f"no gaps in market_snapshots or price_history ({currency}, {scope}{window})")
            return
        print(format_gaps(listed, notes))
        coins_with_gaps = sorted({gap.coin_id for gap in listed})
        reach = math.ceil((now - min(gap.after for gap in listed)) / timedelta(days=1))
        print(
            f"{len(listed)} gap(s) in {len(coins_with_gaps)} coin(s) "
            f"({currency}, {scope}{window}); to fill what CoinGecko still serves: "
            f"python etl.py backfill --coins={','.join(coins_with_gaps)} --days={reach} "
            f"--vs_currency={currency}"
        )

    @command
    def init_db(self):
        """Create or upgrade the database schema (Alembic migrations).

        Example: python etl.py init_db
        """
        from crypto_etl.storage.engine import describe, init_db, make_engine

        engine = make_engine(self._config().database_url)
        revision = init_db(engine)
        print(f"schema at revision {revision} in {describe(engine)}")


def _keep_ohlc_current(engine, client, settings, currency, should_stop) -> str | None:
    """After a snapshot run: bring candles of the top OHLC_TOP_N coins up to date. A failure
    here is logged and recorded in its own `ohlc` run; it never fails the snapshot run."""
    from crypto_etl.pipeline.backfill import history_now, refresh_ohlc

    try:
        report = refresh_ohlc(engine, client, settings, currency, history_now(), should_stop)
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.error("ohlc: keeping candles current failed: %s (the snapshot run is stored)", detail)
        return f"ohlc failed: {detail}"
    if report is None:
        return None
    note = (
        f"ohlc run {report.run_id} {report.status}: {len(report.coins)} coin(s), "
        f"{report.total('candles_new')} new candles"
    )
    if report.failed:
        note += "; failed: " + ", ".join(r.coin_id for r in report.failed)
        log.warning("%s", note)
    return note


def _gap_note(engine, gap, price_gaps, servable_from) -> str:
    """What backfill can do about a gap: CoinGecko serves price history back to `servable_from`."""
    from crypto_etl.storage.history import price_coverage

    if gap.before <= servable_from:
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


def _csv_source(table) -> str:
    """Where a chart's data comes from, for its subtitle."""
    when = table.as_of.strftime("%Y-%m-%d %H:%M UTC")
    snapshots = f"{table.snapshots} snapshots" if table.snapshots > 1 else "1 snapshot"
    return f"newest of {snapshots} in {table.path.name}, CoinGecko data as of {when}"


def main() -> None:
    fire.Fire(CryptoETLPipeline(), name="etl.py")


if __name__ == "__main__":
    main()
