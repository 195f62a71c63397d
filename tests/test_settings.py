"""crypto_etl.settings: settings from an explicit environment mapping, from `.env`, and their
checks.

Most tests pass `env=` and `dotenv=False`, so the machine's own environment plays no part. The
`.env` tests clear every variable config reads (restored afterwards) and run in a temporary folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from crypto_etl.errors import ConfigError
from crypto_etl.settings import (
    DEFAULT_SQLITE_URL,
    PRO_BASE_URL,
    PUBLIC_BASE_URL,
    Settings,
    currency_code,
    database_url_from,
    load_settings,
)

CONFIG_VARIABLES = (
    "DATABASE_URL",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DB",
    "COINGECKO_BASE_URL",
    "COINGECKO_API_KEY",
    "COINGECKO_API_PLAN",
    "COINGECKO_CALLS_PER_MINUTE",
    "COINGECKO_MAX_RETRIES",
    "VS_CURRENCY",
    "TOP_N",
    "OHLC_TOP_N",
    "HTTP_TIMEOUT_SECONDS",
    "LOG_LEVEL",
    "LOG_FILE",
    "DATA_DIR",
    "STALE_AFTER_SECONDS",
    "FUTURE_TOLERANCE_SECONDS",
    "COINGECKO_SHARED_RATE_LIMIT",
)


def settings(**env: str) -> Settings:
    return load_settings(env=env, dotenv=False)


def config_error(**env: str) -> str:
    """The one-line message of the ConfigError that `env` raises."""
    with pytest.raises(ConfigError) as info:
        settings(**env)
    message = str(info.value)
    assert message and "\n" not in message
    return message


# Defaults


def test_empty_environment_gives_the_documented_defaults():
    loaded = settings()

    assert loaded == Settings()
    assert loaded.database_url == "sqlite:///data/crypto.db" == DEFAULT_SQLITE_URL
    assert loaded.coingecko_base_url == PUBLIC_BASE_URL == "https://api.coingecko.com/api/v3"
    assert loaded.coingecko_api_key is None
    assert loaded.coingecko_api_plan == "demo"
    assert loaded.api_key_header == "x-cg-demo-api-key"
    assert loaded.vs_currency == "usd"
    assert loaded.top_n == 50
    assert loaded.http_timeout_seconds > 0
    assert loaded.calls_per_minute == 10.0
    assert loaded.shared_rate_limit is False
    assert loaded.log_level == "INFO"
    assert loaded.log_file is None
    assert loaded.data_dir == Path("data")
    assert loaded.raw_dir == Path("data") / "raw"


def test_blank_values_count_as_unset():
    blank = {name: "  " for name in CONFIG_VARIABLES}

    assert load_settings(env=blank, dotenv=False) == Settings()


def test_values_are_read_trimmed_and_normalised():
    loaded = settings(
        TOP_N=" 7 ",
        VS_CURRENCY=" EUR ",
        LOG_LEVEL="debug",
        HTTP_TIMEOUT_SECONDS="2.5",
        COINGECKO_CALLS_PER_MINUTE="25",
        COINGECKO_BASE_URL="http://127.0.0.1:8000/api/v3/",
        LOG_FILE="logs/etl.log",
        DATA_DIR="/srv/crypto",
    )

    assert loaded.top_n == 7
    assert loaded.vs_currency == "eur"
    assert loaded.log_level == "DEBUG"
    assert loaded.http_timeout_seconds == 2.5
    assert loaded.calls_per_minute == 25.0
    assert loaded.coingecko_base_url == "http://127.0.0.1:8000/api/v3"
    assert loaded.log_file == "logs/etl.log"
    assert loaded.raw_dir == Path("/srv/crypto/raw")


def test_a_key_raises_the_default_pacing():
    keyed = settings(COINGECKO_API_KEY="CG-abc")
    paced = settings(COINGECKO_API_KEY="CG-abc", COINGECKO_CALLS_PER_MINUTE="5")

    assert keyed.calls_per_minute > settings().calls_per_minute
    assert paced.calls_per_minute == 5


@pytest.mark.parametrize(
    ("value", "shared"),
    [
        *[("on", True), ("ON", True), ("true", True), ("1", True), ("yes", True)],
        *[("off", False), ("Off", False), ("false", False), ("0", False), ("no", False)],
    ],
)
def test_shared_rate_limit_is_a_switch(value, shared):
    assert settings(COINGECKO_SHARED_RATE_LIMIT=f" {value} ").shared_rate_limit is shared


def test_shared_rate_limit_can_be_turned_on_in_code():
    """As an orchestrator's DAG does, whatever the environment says."""
    assert dataclasses.replace(settings(), shared_rate_limit=True).shared_rate_limit is True


# Database URL


def test_database_url_wins_over_postgres_variables():
    loaded = settings(
        DATABASE_URL="postgresql://etl:secret@db.internal:6543/market",
        POSTGRES_HOST="other-host",
        POSTGRES_USER="someone",
        POSTGRES_PASSWORD="else",
    )

    assert loaded.database_url == "postgresql://etl:secret@db.internal:6543/market"


def test_postgres_host_builds_a_postgresql_url():
    url = settings(
        POSTGRES_HOST="db",
        POSTGRES_USER="etl",
        POSTGRES_PASSWORD="secret",
        POSTGRES_PORT="6543",
        POSTGRES_DB="market",
    ).database_url

    assert url == "postgresql://etl:secret@db:6543/market"


def test_postgres_url_defaults_for_user_port_and_database():
    assert database_url_from({"POSTGRES_HOST": "db"}) == "postgresql://postgres@db:5432/crypto"


@pytest.mark.parametrize("password", ["p@ss:w/rd", "100%sure", "a+b#c?d", "ünï"])
def test_postgres_password_is_url_quoted_and_reads_back_intact(password):
    url = settings(POSTGRES_HOST="db", POSTGRES_USER="etl", POSTGRES_PASSWORD=password).database_url

    parsed = make_url(url)
    assert parsed.password == password
    assert parsed.username == "etl"
    assert parsed.host == "db"
    assert parsed.port == 5432
    assert password not in url


def test_postgres_password_with_a_space_reads_back_intact():
    url = settings(
        POSTGRES_HOST="db", POSTGRES_USER="etl admin", POSTGRES_PASSWORD="correct horse"
    ).database_url

    parsed = make_url(url)
    assert parsed.password == "correct horse"
    assert parsed.username == "etl admin"


def test_without_database_url_or_postgres_host_the_sqlite_default_is_used():
    loaded = settings(POSTGRES_USER="etl", POSTGRES_PASSWORD="secret", POSTGRES_DB="market")

    assert loaded.database_url == "sqlite:///data/crypto.db"


# CoinGecko plan, header and host


@pytest.mark.parametrize(
    ("plan", "header", "base_url"),
    [
        ("demo", "x-cg-demo-api-key", PUBLIC_BASE_URL),
        ("pro", "x-cg-pro-api-key", PRO_BASE_URL),
        ("PRO", "x-cg-pro-api-key", PRO_BASE_URL),
        (" Demo ", "x-cg-demo-api-key", PUBLIC_BASE_URL),
    ],
)
def test_plan_picks_the_key_header_and_host(plan, header, base_url):
    loaded = settings(COINGECKO_API_PLAN=plan, COINGECKO_API_KEY="CG-key")

    assert loaded.coingecko_api_plan == plan.strip().lower()
    assert loaded.api_key_header == header
    assert loaded.coingecko_base_url == base_url
    assert loaded.coingecko_api_key == "CG-key"


def test_pro_host_is_https_pro_api():
    assert PRO_BASE_URL == "https://pro-api.coingecko.com/api/v3"


def test_explicit_base_url_wins_over_the_pro_host():
    loaded = settings(COINGECKO_API_PLAN="pro", COINGECKO_BASE_URL="http://localhost:9000/v3")

    assert loaded.coingecko_base_url == "http://localhost:9000/v3"
    assert loaded.api_key_header == "x-cg-pro-api-key"


# Invalid values: one line naming the variable


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOP_N", "abc"),
        ("TOP_N", "0"),
        ("TOP_N", "-3"),
        ("TOP_N", "2.5"),
        ("COINGECKO_API_PLAN", "gold"),
        ("LOG_LEVEL", "LOUD"),
        ("HTTP_TIMEOUT_SECONDS", "-1"),
        ("HTTP_TIMEOUT_SECONDS", "0"),
        ("HTTP_TIMEOUT_SECONDS", "soon"),
        ("HTTP_TIMEOUT_SECONDS", "nan"),
        ("HTTP_TIMEOUT_SECONDS", "inf"),
        ("COINGECKO_CALLS_PER_MINUTE", "0"),
        ("COINGECKO_BASE_URL", "ftp://x"),
        ("COINGECKO_BASE_URL", "api.coingecko.com/api/v3"),
        ("VS_CURRENCY", "u s d"),
        ("VS_CURRENCY", "usd;drop"),
        ("VS_CURRENCY", "x" * 21),  # longer than the vs_currency columns hold
        ("VS_CURRENCY", "€"),
        ("DATABASE_URL", "nonsense"),
        ("POSTGRES_PORT", "fivefour"),
        ("COINGECKO_MAX_RETRIES", "-1"),
        ("OHLC_TOP_N", "many"),
        ("STALE_AFTER_SECONDS", "0"),
        ("FUTURE_TOLERANCE_SECONDS", "-5"),
        ("COINGECKO_SHARED_RATE_LIMIT", "maybe"),
        ("COINGECKO_SHARED_RATE_LIMIT", "2"),
    ],
)
def test_invalid_value_raises_config_error_naming_the_variable(name, value):
    env = {name: value}
    if name == "POSTGRES_PORT":
        env["POSTGRES_HOST"] = "db"

    message = config_error(**env)

    assert message.startswith(name)
    assert repr(value) in message


@pytest.mark.parametrize(
    ("name", "value", "expects"),
    [
        ("TOP_N", "abc", "whole number >= 1"),
        ("COINGECKO_API_PLAN", "gold", "'demo' or 'pro'"),
        ("LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("HTTP_TIMEOUT_SECONDS", "-1", "positive number"),
        ("COINGECKO_BASE_URL", "ftp://x", "http:// or https://"),
        ("VS_CURRENCY", "u s d", "currency code"),
        ("DATABASE_URL", "nonsense", "SQLAlchemy URL"),
        ("COINGECKO_SHARED_RATE_LIMIT", "maybe", "on or off"),
    ],
)
def test_invalid_value_message_says_what_is_expected(name, value, expects):
    message = config_error(**{name: value})

    assert expects in message


def test_postgres_port_out_of_range_is_a_config_error():
    config_error(POSTGRES_HOST="db", POSTGRES_PORT="70000")


# .env in the working directory


@pytest.fixture
def clean_environ(monkeypatch, tmp_path):
    """No config variable set, cwd an empty folder; whatever the test (or `.env`) sets is undone."""
    for name in CONFIG_VARIABLES:
        # setenv first so that monkeypatch restores "unset" even if load_dotenv sets it later.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_dotenv(folder: Path) -> None:
    (folder / ".env").write_text(
        "# local settings\n"
        "TOP_N=7\n"
        "VS_CURRENCY=eur\n"
        "DATABASE_URL=sqlite:///from-dotenv.db\n"
        'COINGECKO_API_KEY="CG-from-dotenv"\n',
        encoding="utf-8",
    )


def test_dotenv_in_the_working_directory_is_read(clean_environ):
    write_dotenv(clean_environ)

    loaded = load_settings()

    assert loaded.top_n == 7
    assert loaded.vs_currency == "eur"
    assert loaded.database_url == "sqlite:///from-dotenv.db"
    assert loaded.coingecko_api_key == "CG-from-dotenv"


def test_real_environment_variables_win_over_dotenv(clean_environ, monkeypatch):
    write_dotenv(clean_environ)
    monkeypatch.setenv("TOP_N", "9")
    monkeypatch.setenv("DATABASE_URL", "postgresql://etl@db:5432/crypto")

    loaded = load_settings()

    assert loaded.top_n == 9
    assert loaded.database_url == "postgresql://etl@db:5432/crypto"
    assert loaded.vs_currency == "eur"  # not set in the environment: .env still applies


def test_dotenv_false_ignores_the_file(clean_environ):
    write_dotenv(clean_environ)

    assert load_settings(dotenv=False) == Settings()


def test_no_dotenv_file_gives_the_defaults(clean_environ):
    assert load_settings() == Settings()


def test_invalid_value_in_dotenv_names_the_variable(clean_environ):
    (clean_environ / ".env").write_text("LOG_LEVEL=LOUD\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"^LOG_LEVEL .*'LOUD'"):
        load_settings()


def test_one_currency_rule_for_the_setting_the_command_line_and_the_api():
    assert [currency_code(v) for v in (" EUR ", "usd", "BTC", "a1")] == ["eur", "usd", "btc", "a1"]
    for bad in ("", "u s d", "usd;drop", "x" * 21, "é", 5.5):
        assert currency_code(bad) is None, bad
    assert currency_code(123) == "123"  # python-fire hands --vs_currency=123 over as an int
