"""Settings from environment variables (and a `.env` file when present).

Every setting is read and checked once, at start; an invalid value raises `ConfigError` naming the
variable and what it expects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from crypto_etl.errors import ConfigError

PUBLIC_BASE_URL = "https://api.coingecko.com/api/v3"
PRO_BASE_URL = "https://pro-api.coingecko.com/api/v3"
DEFAULT_SQLITE_URL = "sqlite:///data/crypto.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# A quote currency as CoinGecko names it (usd, eur, btc) and as vs_currency columns hold it
# (String(20)): the one rule for the setting, the command line and the API.
CURRENCY_PATTERN = r"^[A-Za-z0-9]{1,20}$"
CURRENCY_EXPECTED = "a currency code such as usd or eur"


def currency_code(value: object) -> str | None:
    """`value` as a quote currency code in lower case (" EUR " -> "eur"), or None when it is not
    one (1 to 20 letters or digits)."""
    text = str(value).strip().lower()
    return text if re.fullmatch(CURRENCY_PATTERN, text) else None


@dataclass(frozen=True)
class AlertSettings:
    """Thresholds of the alert conditions and anomaly rules, and where alerts are sent
    (README: Alerts and anomaly flags)."""

    webhook_urls: tuple[str, ...] = field(default=(), repr=False)  # they carry secrets
    webhook_timeout_seconds: float = 5.0
    webhook_retries: int = 3
    webhook_backoff_seconds: float = 0.5
    failed_runs_in_a_row: int = 3
    stale_after_seconds: int = 3600
    quarantine_rate: float = 0.1
    price_move_z: float = 12.0
    volume_jump_z: float = 12.0
    market_cap_tolerance: float = 0.05
    min_history: int = 24
    history_window: int = 288


@dataclass(frozen=True)
class Settings:
    """All settings the pipeline, the API and the dashboard read."""

    database_url: str = DEFAULT_SQLITE_URL
    coingecko_base_url: str = PUBLIC_BASE_URL
    coingecko_api_key: str | None = None
    coingecko_api_plan: str = "demo"
    vs_currency: str = "usd"
    top_n: int = 50
    ohlc_top_n: int = 5
    http_timeout_seconds: float = 30.0
    calls_per_minute: float = 10.0
    # COINGECKO_SHARED_RATE_LIMIT: the calls per minute are one budget for every process using the
    # database (crypto_etl.pipeline.source), not a limit per process.
    shared_rate_limit: bool = False
    max_retries: int = 5
    retry_wait_min_seconds: float = 2.0
    retry_wait_max_seconds: float = 60.0
    log_level: str = "INFO"
    log_file: str | None = None
    data_dir: Path = Path("data")
    stale_after_seconds: int = 6 * 3600
    future_tolerance_seconds: int = 300
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    expected_cadence_seconds: int = 300
    api_cache_check_seconds: float = 1.0
    run_heartbeat_seconds: float = 30.0
    run_lease_seconds: float = 120.0
    # History store (README: A history store for billions of rows): months of partitions kept
    # ready ahead of now, and how long detailed history is kept (None: forever).
    partitions_ahead_months: int = 2
    retention_days: int | None = None
    retention_mode: str = "drop"  # drop, or hourly (downsample to one row per coin and hour)
    alerts: AlertSettings = field(default_factory=lambda: AlertSettings())

    @property
    def api_key_header(self) -> str:
        """The header CoinGecko expects the key in, by plan."""
        return "x-cg-pro-api-key" if self.coingecko_api_plan == "pro" else "x-cg-demo-api-key"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {raw!r}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, allow_zero: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    expected = "a number >= 0" if allow_zero else "a positive number"
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {expected}, got {raw!r}") from None
    too_small = value < 0 if allow_zero else not value > 0
    if too_small or value != value or value == float("inf"):
        raise ConfigError(f"{name} must be {expected}, got {raw!r}")
    return value


_SWITCH_VALUES = {
    "on": True,
    "true": True,
    "yes": True,
    "1": True,
    "off": False,
    "false": False,
    "no": False,
    "0": False,
}


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    """An on/off setting (also true/false, yes/no, 1/0); empty means `default`."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    value = _SWITCH_VALUES.get(raw.lower())
    if value is None:
        raise ConfigError(f"{name} must be on or off, got {raw!r}")
    return value


def database_url_from(env: Mapping[str, str]) -> str:
    """DATABASE_URL, else a PostgreSQL URL from POSTGRES_*, else the embedded SQLite default."""
    url = env.get("DATABASE_URL", "").strip()
    if url:
        if "://" not in url:
            raise ConfigError(
                f"DATABASE_URL must be a SQLAlchemy URL such as "
                f"postgresql://user:password@host:5432/db or sqlite:///data/crypto.db, got {url!r}"
            )
        return url
    host = env.get("POSTGRES_HOST", "").strip()
    if host:
        user = quote(env.get("POSTGRES_USER", "postgres").strip() or "postgres", safe="")
        password = env.get("POSTGRES_PASSWORD", "")
        port = _int(env, "POSTGRES_PORT", 5432)
        if port > 65535:
            raise ConfigError(f"POSTGRES_PORT must be a port number (1-65535), got {port}")
        db = env.get("POSTGRES_DB", "").strip() or "crypto"
        auth = f"{user}:{quote(password, safe='')}" if password else user
        return f"postgresql://{auth}@{host}:{port}/{db}"
    return DEFAULT_SQLITE_URL


def load_settings(env: Mapping[str, str] | None = None, dotenv: bool = True) -> Settings:
    """Read and check every setting; `env` defaults to os.environ (after reading `.env`)."""
    if env is None:
        if dotenv:
            from dotenv import load_dotenv

            load_dotenv(Path.cwd() / ".env", override=False)
        env = os.environ

    plan = env.get("COINGECKO_API_PLAN", "").strip().lower() or "demo"
    if plan not in ("demo", "pro"):
        raise ConfigError(f"COINGECKO_API_PLAN must be 'demo' or 'pro', got {plan!r}")
    key = env.get("COINGECKO_API_KEY", "").strip() or None
    base = env.get("COINGECKO_BASE_URL", "").strip().rstrip("/")
    if base and not base.startswith(("http://", "https://")):
        raise ConfigError(f"COINGECKO_BASE_URL must start with http:// or https://, got {base!r}")
    if not base:
        base = PRO_BASE_URL if plan == "pro" else PUBLIC_BASE_URL

    raw_currency = env.get("VS_CURRENCY", "").strip() or "usd"
    vs = currency_code(raw_currency)
    if vs is None:
        raise ConfigError(f"VS_CURRENCY must be {CURRENCY_EXPECTED}, got {raw_currency!r}")

    level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")

    # Keyless use of the public API allows only a handful of calls a minute; keys allow more.
    default_cpm = 30.0 if key else 10.0
    wait_min = _float(env, "COINGECKO_RETRY_WAIT_MIN_SECONDS", 2.0, allow_zero=True)
    wait_max = _float(env, "COINGECKO_RETRY_WAIT_MAX_SECONDS", 60.0, allow_zero=True)
    if wait_max < wait_min:
        raise ConfigError(
            f"COINGECKO_RETRY_WAIT_MAX_SECONDS ({wait_max:g}) must be at least "
            f"COINGECKO_RETRY_WAIT_MIN_SECONDS ({wait_min:g})"
        )
    return Settings(
        database_url=database_url_from(env),
        coingecko_base_url=base,
        coingecko_api_key=key,
        coingecko_api_plan=plan,
        vs_currency=vs,
        top_n=_int(env, "TOP_N", 50),
        ohlc_top_n=_int(env, "OHLC_TOP_N", 5, minimum=0),
        http_timeout_seconds=_float(env, "HTTP_TIMEOUT_SECONDS", 30.0),
        calls_per_minute=_float(env, "COINGECKO_CALLS_PER_MINUTE", default_cpm),
        shared_rate_limit=_switch(env, "COINGECKO_SHARED_RATE_LIMIT", False),
        max_retries=_int(env, "COINGECKO_MAX_RETRIES", 5, minimum=0),
        retry_wait_min_seconds=wait_min,
        retry_wait_max_seconds=wait_max,
        log_level=level,
        log_file=env.get("LOG_FILE", "").strip() or None,
        data_dir=Path(env.get("DATA_DIR", "").strip() or "data"),
        stale_after_seconds=_int(env, "STALE_AFTER_SECONDS", 6 * 3600),
        future_tolerance_seconds=_int(env, "FUTURE_TOLERANCE_SECONDS", 300, minimum=0),
        api_key=env.get("API_KEY", "").strip() or None,
        cors_origins=_origins(env),
        expected_cadence_seconds=_int(env, "ETL_INTERVAL_SECONDS", 300),
        api_cache_check_seconds=_float(env, "API_CACHE_CHECK_SECONDS", 1.0, allow_zero=True),
        **_lease(env),
        **_history_store(env),
        alerts=alert_settings(env),
    )


RETENTION_MODES = ("drop", "hourly")


def _history_store(env: Mapping[str, str]) -> dict[str, object]:
    """PARTITIONS_AHEAD_MONTHS, RETENTION_DAYS (empty or 0: keep everything) and RETENTION_MODE."""
    days = _int(env, "RETENTION_DAYS", 0, minimum=0)
    mode = env.get("RETENTION_MODE", "").strip().lower() or "drop"
    if mode not in RETENTION_MODES:
        raise ConfigError(f"RETENTION_MODE must be 'drop' or 'hourly', got {mode!r}")
    return {
        "partitions_ahead_months": _int(env, "PARTITIONS_AHEAD_MONTHS", 2, minimum=0),
        "retention_days": days or None,
        "retention_mode": mode,
    }


def _lease(env: Mapping[str, str]) -> dict[str, float]:
    """RUN_HEARTBEAT_SECONDS and RUN_LEASE_SECONDS: a running run renews its lease that often, and
    a lease not renewed for that long marks the run abandoned; the lease must outlast at least
    two heartbeats, so that one late heartbeat never abandons a live run."""
    heartbeat = _float(env, "RUN_HEARTBEAT_SECONDS", 30.0)
    lease = _float(env, "RUN_LEASE_SECONDS", 120.0)
    if lease < 2 * heartbeat:
        raise ConfigError(
            f"RUN_LEASE_SECONDS ({lease:g}) must be at least twice RUN_HEARTBEAT_SECONDS "
            f"({heartbeat:g})"
        )
    return {"run_heartbeat_seconds": heartbeat, "run_lease_seconds": lease}


def alert_settings(env: Mapping[str, str]) -> AlertSettings:
    """The ALERT_* settings."""
    return AlertSettings(
        webhook_urls=_webhook_urls(env),
        webhook_timeout_seconds=_float(env, "ALERT_WEBHOOK_TIMEOUT_SECONDS", 5.0),
        webhook_retries=_int(env, "ALERT_WEBHOOK_RETRIES", 3, minimum=0),
        webhook_backoff_seconds=_float(env, "ALERT_WEBHOOK_BACKOFF_SECONDS", 0.5, allow_zero=True),
        failed_runs_in_a_row=_int(env, "ALERT_FAILED_RUNS_IN_A_ROW", 3, minimum=2),
        stale_after_seconds=_int(env, "ALERT_STALE_AFTER_SECONDS", 3600),
        quarantine_rate=_fraction(env, "ALERT_QUARANTINE_RATE", 0.1),
        price_move_z=_float(env, "ALERT_PRICE_MOVE_Z", 12.0),
        volume_jump_z=_float(env, "ALERT_VOLUME_JUMP_Z", 12.0),
        market_cap_tolerance=_fraction(env, "ALERT_MARKET_CAP_TOLERANCE", 0.05),
        min_history=_int(env, "ALERT_MIN_HISTORY", 24, minimum=2),
        history_window=_int(env, "ALERT_HISTORY_WINDOW", 288, minimum=10),
    )


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default, allow_zero=True)
    if value > 1:
        raise ConfigError(f"{name} must be a fraction between 0 and 1 (0.1 is 10 %), got {value}")
    return value


WEBHOOK_FORMATS = ("slack", "json")


def _webhook_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    """ALERT_WEBHOOK_URLS: comma-separated http(s) URLs, each optionally prefixed `slack+` or
    `json+`. A bad entry is named by its position only: the URLs carry secrets."""
    raw = env.get("ALERT_WEBHOOK_URLS", "")
    urls = tuple(part.strip() for part in raw.split(",") if part.strip())
    for number, url in enumerate(urls, 1):
        prefix, _, rest = url.partition("+")
        parts = urlsplit(rest if prefix in WEBHOOK_FORMATS else url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"ALERT_WEBHOOK_URLS entry {number} must be an http(s) URL, optionally prefixed "
                "slack+ or json+ (e.g. slack+https://hooks.slack.com/services/...)"
            )
    return urls


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    """CORS_ORIGINS: comma-separated origins such as https://dash.example.com, or `*`."""
    raw = env.get("CORS_ORIGINS", "")
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(
                f"CORS_ORIGINS must be comma-separated origins such as https://dash.example.com "
                f"or *, got {origin!r}"
            )
    return origins
