"""Crypto ETL command line (python-fire): CoinGecko market data into a database, with its history.

Each command parses and normalises its arguments, calls one library function that does the work
and returns what it did (crypto_etl.pipeline, crypto_etl.reports), and prints it. Expected
failures end here, at the edge, as one `error:` line and a non-zero exit status.

    python etl.py --help
    python etl.py run
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import fire

from crypto_etl.errors import (
    ETLError,
    Terminated,
    ValidationFailed,
    database_failure,
    failure_line,
    first_line,
)
from crypto_etl.settings import CURRENCY_EXPECTED, Settings, currency_code, load_settings

log = logging.getLogger("etl")
USAGE_EXIT = 2
INTERRUPTED_EXIT = 130  # Ctrl-C (SIGINT)
TERMINATED_EXIT = 143  # SIGTERM (128 + 15)


class UsageError(ETLError):
    """A command-line argument is invalid."""

    exit_code = USAGE_EXIT


class BackfillIncomplete(ETLError):
    """Some coins could not be fetched; the others were stored."""


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
        from crypto_etl.pipeline.scheduler import sigterm_interrupts

        # `schedule` handles SIGINT and SIGTERM itself: it stops after the current step.
        stops = contextlib.nullcontext() if func.__name__ == "schedule" else sigterm_interrupts()
        try:
            with stops:
                return func(self, *args, **kwargs)
        except ETLError as exc:
            log.debug("traceback", exc_info=True)
            print(f"error: {failure_line(exc)}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            log.debug("traceback", exc_info=True)
            print(f"error: {first_line(exc)}", file=sys.stderr)
            sys.exit(TERMINATED_EXIT if isinstance(exc, Terminated) else INTERRUPTED_EXIT)
        except Exception as exc:
            log.debug("traceback", exc_info=True)
            if database_failure(exc) is not None:
                print(f"error: {failure_line(exc)}", file=sys.stderr)
                sys.exit(1)
            kind, detail = type(exc).__name__, first_line(exc)
            what = kind if detail == kind else f"{kind}: {detail}"
            print(
                f"error: unexpected {what} (run with LOG_LEVEL=DEBUG to see the traceback)",
                file=sys.stderr,
            )
            sys.exit(1)

    return wrapper


# -- arguments as python-fire hands them over ------------------------------------------------------
def _positive_int(name: str, value, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"--{name} must be a whole number >= 1, got {value!r}")
    return value


def _currency(value, default: str) -> str:
    if value is None:
        return default
    code = currency_code(value)
    if code is None:
        raise UsageError(f"--vs_currency must be {CURRENCY_EXPECTED}, got {value!r}")
    return code


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


def _path(name: str, value) -> Path:
    if value is None or isinstance(value, bool) or str(value).strip() == "":
        raise UsageError(f"--{name} needs a file path")
    return Path(str(value))


def _moment(name: str, value) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--{name} must be an ISO 8601 time, got {value!r}") from None
    if moment.tzinfo is None:
        raise UsageError(f"--{name} needs a timezone, e.g. 2025-01-01T00:00:00Z")
    return moment


@contextlib.contextmanager
def _coin_progress(total: int) -> Iterator[Callable]:
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


def _reports():
    """The chart commands' library; it needs matplotlib (the `charts` extra)."""
    try:
        from crypto_etl.reports import make
    except ModuleNotFoundError as exc:
        if exc.name != "matplotlib":
            raise
        raise ETLError(
            "the chart commands need matplotlib: pip install 'crypto-etl[charts]'"
        ) from None
    return make


class CryptoETLPipeline:
    """Collect CoinGecko market data and keep its full history in a database.

    Settings come from environment variables or a .env file (see .env.example).
    """

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._database = None

    def _config(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
            setup_logging(self._settings.log_level, self._settings.log_file)
        return self._settings

    def _db(self):
        """The database, opened (and migrated) when a command first needs it."""
        if self._database is None:
            from crypto_etl.storage.engine import Database

            settings = self._config()
            self._database = Database(settings.database_url, settings.partitions_ahead_months)
        return self._database

    # -- the snapshot pipeline ---------------------------------------------------------------------
    @command
    def extract(self, save_path: str = "raw.json", top_n: int | None = None, vs_currency=None):
        """Fetch the top coins by market cap from CoinGecko into a raw JSON file, unmodified.

        Example: python etl.py extract --save_path=raw.json --top_n=50 --vs_currency=usd
        """
        from crypto_etl.pipeline.snapshot import extract_file

        settings = self._config()
        path = _path("save_path", save_path)
        top = _positive_int("top_n", top_n, settings.top_n)
        currency = _currency(vs_currency, settings.vs_currency)
        done = extract_file(settings, self._db(), path, top, currency)
        print(f"extracted {done.rows} coins ({done.vs_currency}) into {done.path}")

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
        when = _moment("snapshot_at", snapshot_at)
        currency = None if vs_currency is None else _currency(vs_currency, settings.vs_currency)
        done = transform_file(settings, self._db(), source, target, currency, when)
        print(f"transformed {done.rows} rows from {done.source} into {done.target}")

    @command
    def validate(self, csv_path: str = "crypto_top_50.csv"):
        """Check a snapshot CSV against the data quality rules; exits 1 if a critical rule fails.

        Example: python etl.py validate --csv_path=crypto_top_50.csv
        """
        from crypto_etl.pipeline.snapshot import validate_file

        done = validate_file(self._config(), self._db(), _path("csv_path", csv_path))
        report = done.report
        print(report.format())
        if not report.passed:
            raise ValidationFailed(
                f"{report.rejected_count} of {report.rows} rows in {done.path} break a critical "
                "rule"
            )

    @command
    def load(self, csv_path: str = "crypto_top_50.csv"):
        """Validate and load a snapshot CSV into the database, all or nothing.

        Rows that break a critical rule go to rejected_rows; rows already stored are skipped.

        Example: python etl.py load --csv_path=crypto_top_50.csv
        """
        from crypto_etl.pipeline.snapshot import load_file

        done = load_file(self._config(), self._db(), _path("csv_path", csv_path))
        result = done.result
        print(
            f"loaded {result.loaded} new rows from {done.path} ({result.skipped} already stored, "
            f"{result.rejected} quarantined in rejected_rows); run {done.run_id}"
        )

    @command
    def run(self, top_n: int | None = None, vs_currency=None):
        """Extract, transform, validate and load one snapshot, recorded as one run.

        Raw payloads are kept in data/raw/ and CSVs in data/processed/ for replay.
        Example: python etl.py run --top_n=100
        """
        from crypto_etl.pipeline.snapshot import run_snapshot

        settings = self._config()
        top = _positive_int("top_n", top_n, settings.top_n)
        currency = _currency(vs_currency, settings.vs_currency)
        done = run_snapshot(settings, self._db(), top, currency)
        for kept in done.caught_up:
            print(
                f"caught up: run {kept.run_id} {kept.status}: {kept.result.loaded} loaded from "
                f"{kept.path} (a kept payload not stored before)"
            )
        result = done.result
        print(
            f"run {done.run_id} {done.status}: {done.extracted} extracted, "
            f"{result.loaded} loaded, {result.skipped} already stored, "
            f"{result.rejected} quarantined"
        )
        note = done.candles.describe() if done.candles else None
        if note:
            print(note)

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
        from crypto_etl.pipeline.snapshot import schedule_snapshots

        settings = self._config()
        if isinstance(interval_seconds, bool) or not isinstance(interval_seconds, int | float):
            raise UsageError(f"--interval_seconds must be a number, got {interval_seconds!r}")
        if interval_seconds <= 0:
            raise UsageError(f"--interval_seconds must be > 0, got {interval_seconds!r}")
        if max_runs is not None:
            max_runs = _positive_int("max_runs", max_runs, 1)
        top = _positive_int("top_n", top_n, settings.top_n)
        currency = _currency(vs_currency, settings.vs_currency)
        done = schedule_snapshots(settings, self._db(), interval_seconds, top, currency, max_runs)
        reason = f" ({done.signal_name})" if done.signal_name else ""
        print(f"schedule stopped{reason} after {done.runs} run(s), {done.failures} failed")

    # -- charts ----------------------------------------------------------------------------------
    @command
    def visualize(self, csv_path: str = "crypto_top_50.csv", output_dir: str = "charts"):
        """Draw market share, price, 24h move and market cap vs volume charts of a CSV as PNGs.

        Example: python etl.py visualize --csv_path=crypto_top_50.csv --output_dir=charts
        """
        self._config()
        make = _reports()
        written = make.market_charts(_path("csv_path", csv_path), _path("output_dir", output_dir))
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
        if coin_name is None or isinstance(coin_name, bool) or str(coin_name).strip() == "":
            raise UsageError(
                "--coin_name needs a coin id, symbol or name, e.g. --coin_name=bitcoin"
            )
        settings = self._config()
        make = _reports()
        target = None if save_path is None else _path("save_path", save_path)
        chart = make.candlestick(
            _path("csv_path", csv_path), str(coin_name), target, settings.database_url
        )
        print(chart.path)

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
        top = _positive_int("top_n", top_n, 10)
        window_days = _positive_int("days", days, 30)
        if top < 2:
            raise UsageError("--top_n must be at least 2 for a correlation")
        settings = self._config()
        make = _reports()
        path = make.correlation_heatmap(
            _path("csv_path", csv_path),
            _path("save_path", save_path),
            top,
            window_days,
            settings.database_url,
        )
        print(path)

    # -- history ---------------------------------------------------------------------------------
    @command
    def backfill(self, coins=None, days: int = 90, vs_currency=None, top_n: int | None = None):
        """Fill price_history and ohlc from CoinGecko history: incremental, resumable, fills gaps.

        Per coin only what is not stored yet is fetched (after the last point, before the first,
        and gaps), at the finest granularity the plan serves. Without --coins: the current top
        --top_n coins (TOP_N). Keyless and demo plans reach 365 days back. Coins that fail are
        listed at the end and the exit status is 1; the others are stored. Run it again to resume.
        Example: python etl.py backfill --coins=bitcoin,ethereum --days=90 --vs_currency=usd
        """
        from crypto_etl.clock import utcnow
        from crypto_etl.coingecko.history import backfill_start
        from crypto_etl.pipeline.backfill import run_backfill

        settings = self._config()
        days = _positive_int("days", days, 90)
        currency = _currency(vs_currency, settings.vs_currency)
        ids = _coin_ids(coins)
        top = _positive_int("top_n", top_n, settings.top_n)
        now = utcnow()
        start, cut = backfill_start(days, now, settings)
        if cut:
            print(
                f"warning: --days={days} reaches further back than the 365 days that keyless and "
                f"demo CoinGecko plans serve; fetching from {start:%Y-%m-%d %H:%M} UTC "
                "(a pro key with COINGECKO_API_PLAN=pro reaches further)",
                file=sys.stderr,
            )
        engine = self._db().engine
        with _coin_progress(len(ids) if ids else top) as on_coin:
            report = run_backfill(engine, settings, ids, currency, top, start, now, on_coin)
        stored = len(report.coins) - len(report.failed)
        print(
            f"backfill run {report.run_id} {report.status}: {stored} of {len(report.coins)} coins "
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
                f"{len(report.failed)} of {len(report.coins)} coins failed ({names}); the others "
                "are stored; run the same command again to retry"
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
        from crypto_etl.clock import utcnow
        from crypto_etl.pipeline.gap_report import gap_report
        from crypto_etl.storage.gaps import DEFAULT_SNAPSHOT_INTERVAL_SECONDS

        settings = self._config()
        ids = _coin_ids(coins)
        currency = _currency(vs_currency, settings.vs_currency)
        cadence = _positive_int(
            "interval_seconds", interval_seconds, DEFAULT_SNAPSHOT_INTERVAL_SECONDS
        )
        window = None if days is None else _positive_int("days", days, 1)
        engine = self._db().engine
        report = gap_report(engine, settings, ids, currency, window, cadence, utcnow())
        print(report.format())

    # -- alerts ----------------------------------------------------------------------------------
    @command
    def alerts(
        self,
        all: bool = False,
        since: str | None = None,
        send_test: bool = False,
        limit: int = 50,
    ):
        """List open alerts and recent anomaly flags, after judging every alert condition.

        --all lists resolved alerts too; --since (ISO 8601) limits them to alerts seen since then
        and the flags to values observed since then (default: flags of the last 24 hours).
        --send_test sends a test message to each webhook of ALERT_WEBHOOK_URLS and reports each
        answer (exit 1 when one fails).
        Example: python etl.py alerts --all --since=2025-01-01T00:00:00Z
        """
        from crypto_etl.pipeline.alerting import alerts_report, send_test_messages

        settings = self._config()
        if send_test:
            answers = send_test_messages(settings)
            for label, answer in answers:
                mark = "ok" if answer.ok else "FAILED"
                print(
                    f"{label}: {mark}, {answer.detail} after {answer.attempts} attempt(s) "
                    f"in {answer.seconds:.2f} s"
                )
            failed = [label for label, answer in answers if not answer.ok]
            if failed:
                raise ETLError(
                    f"{len(failed)} of {len(answers)} webhook(s) did not accept the test"
                )
            return
        if not isinstance(all, bool):
            raise UsageError(f"--all takes no value, got {all!r}")
        moment = _moment("since", since)
        top = _positive_int("limit", limit, 50)
        report = alerts_report(settings, self._db().engine, all, moment, top)
        print(report.format())

    # -- the history store -----------------------------------------------------------------------
    @command
    def partition(self, list: bool = False, exact: bool = False, batch_rows: int = 1_000_000):
        """Convert market_snapshots and price_history to monthly partitions (PostgreSQL only).

        Rows are copied in batches of --batch_rows, checked (count and checksum) and swapped in;
        loads wait meanwhile. Already partitioned: nothing to do. --list lists each table's
        partitions with rows (PostgreSQL's estimate; --exact counts them) and size instead.
        Example: python etl.py partition --batch_rows=500000
        """
        from crypto_etl.pipeline.history_store import partition_listing, partition_tables

        settings = self._config()
        for name, value in (("list", list), ("exact", exact)):
            if not isinstance(value, bool):
                raise UsageError(f"--{name} takes no value, got {value!r}")
        rows = _positive_int("batch_rows", batch_rows, 1_000_000)
        engine = self._db().engine
        if list:
            for table, partitions in partition_listing(engine, exact).items():
                if not partitions:
                    print(f"{table}: a plain table (python etl.py partition converts it)")
                    continue
                print(f"{table}: {len(partitions)} partitions")
                for p in partitions:
                    span = (
                        "DEFAULT" if p.start is None else f"{p.start:%Y-%m-%d} .. {p.end:%Y-%m-%d}"
                    )
                    size = f"{p.total_bytes / 1e6:>10.1f} MB"
                    print(f"  {p.name:<32} {span:<24} {p.rows:>14,} rows {size}")
            return
        done = partition_tables(settings, engine, rows)
        for c in done.conversions:
            if c.already_partitioned:
                print(f"{c.table}: already partitioned, nothing to do")
            else:
                print(
                    f"{c.table}: {c.rows:,} rows moved into {c.partitions} new monthly "
                    f"partitions in {c.seconds:.1f} s"
                )
        if done.run_id is not None:
            print(f"run {done.run_id}: {done.rows:,} rows moved")

    @command
    def retention(self, dry_run: bool = False, days: int | None = None, mode: str | None = None):
        """Drop or downsample history older than RETENTION_DAYS (or --days) days.

        --mode (RETENTION_MODE): drop deletes the older rows of market_snapshots and price_history
        (whole months of partitions dropped); hourly keeps the last row of each coin and hour.
        --dry_run counts what would go and changes nothing. Recorded in etl_runs as `retention`.
        Example: python etl.py retention --days=365 --mode=hourly --dry_run
        """
        from crypto_etl.pipeline.history_store import run_retention
        from crypto_etl.settings import RETENTION_MODES

        settings = self._config()
        if not isinstance(dry_run, bool):
            raise UsageError(f"--dry_run takes no value, got {dry_run!r}")
        if days is None and settings.retention_days is None:
            raise UsageError("retention is off: set RETENTION_DAYS or pass --days, e.g. --days=365")
        window = _positive_int("days", days, settings.retention_days or 1)
        chosen = settings.retention_mode if mode is None else str(mode).strip().lower()
        if chosen not in RETENTION_MODES:
            raise UsageError(f"--mode must be drop or hourly, got {mode!r}")
        done = run_retention(settings, self._db().engine, window, chosen, dry_run)
        kept = done.retention
        verb = "would remove" if dry_run else "removed"
        print(
            f"retention run {done.run_id} ({chosen}, {window} days, cutoff "
            f"{kept.cutoff:%Y-%m-%d %H:%M} UTC){' dry run' if dry_run else ''}:"
        )
        for t in kept.tables:
            line = f"  {t.table}: {verb} {t.rows_removed:,} rows"
            if t.partitions_dropped:
                names = ", ".join(t.partitions_dropped)
                line += f", {len(t.partitions_dropped)} partition(s) dropped ({names})"
            if t.rows_marked_hourly:
                line += f", {t.rows_marked_hourly:,} points marked 1h"
            print(line)

    @command
    def rollup(self, rebuild: bool = False):
        """The hourly rollup (history_hourly) the API answers hourly and daily histories from.

        Every load keeps it current; a database that held history before it existed needs one
        --rebuild (recorded in etl_runs as `rollup`); until then the API reads the raw rows.
        Without --rebuild: says whether it is complete.
        Example: python etl.py rollup --rebuild
        """
        from crypto_etl.pipeline.history_store import rebuild_rollup, rollup_status

        settings = self._config()
        if not isinstance(rebuild, bool):
            raise UsageError(f"--rebuild takes no value, got {rebuild!r}")
        engine = self._db().engine
        if rebuild:
            done = rebuild_rollup(settings, engine)
            print(f"rollup run {done.run_id}: {done.rows:,} hours of {done.pairs:,} coins rebuilt")
            return
        complete, rows = rollup_status(engine)
        state = "complete" if complete else "incomplete (python etl.py rollup --rebuild fills it)"
        print(f"history_hourly: {rows:,} rows, {state}")

    @command
    def init_db(self):
        """Create or upgrade the database schema (Alembic migrations).

        Example: python etl.py init_db
        """
        from crypto_etl.storage.engine import describe, init_db, make_engine

        engine = make_engine(self._config().database_url)
        revision = init_db(engine)
        print(f"schema at revision {revision} in {describe(engine)}")


def check_command_line(argv: list[str]) -> None:
    """Refuse an unknown command, an unknown --flag or too many positional values before any
    work: python-fire would otherwise run the command with what it understood and complain about
    the rest afterwards, in several lines. Help requests and fire's own flags (after `--`) pass."""
    if not argv or argv[0].startswith("-") or "--help" in argv or "-h" in argv:
        return
    name, rest = argv[0], argv[1:]
    method = getattr(CryptoETLPipeline, name, None)
    if name.startswith("_") or not callable(method):
        raise UsageError(f"unknown command {name!r}; python etl.py --help lists the commands")
    if "--" in rest:
        rest = rest[: rest.index("--")]
    params = [p for p in inspect.signature(method).parameters if p != "self"]
    positional, skip_value = 0, False
    for token in rest:
        if skip_value:
            skip_value = False
            continue
        if token.startswith("--"):
            flag, has_value = token[2:].partition("=")[::2], "=" in token
            key = flag[0].replace("-", "_")
            if key not in params and not (key.startswith("no") and key[2:] in params):
                known = ", ".join(f"--{p}" for p in params) or "none"
                raise UsageError(f"{name}: unknown argument --{flag[0]} (it takes: {known})")
            skip_value = not has_value
        else:
            positional += 1
    if positional > len(params):
        raise UsageError(
            f"{name}: {positional} value(s) given without a --name but it takes {len(params)}; "
            f"python etl.py {name} --help lists its arguments"
        )


def main() -> None:
    argv = sys.argv[1:]
    if ("--help" in argv or "-h" in argv) and "--" not in argv:
        # Help wins: python-fire would otherwise first run the command with the other arguments.
        command_name = [argv[0]] if argv and not argv[0].startswith("-") else []
        sys.argv[1:] = [*command_name, "--help"]
    try:
        check_command_line(sys.argv[1:])
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    fire.Fire(CryptoETLPipeline(), name="etl.py")
