"""Numbers as people read them on charts and in the dashboard: money with its currency, compact
large figures (1.2 T), prices with enough digits for coins worth a fraction of a cent, durations."""

from __future__ import annotations

import math

# Interval names (as the API, the analytics and CoinGecko's granularities use them) in words.
INTERVAL_WORDS = {
    "5m": "5-minute",
    "30m": "30-minute",
    "1h": "hourly",
    "4h": "4-hour",
    "1d": "daily",
    "4d": "4-day",
}
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "inr": "₹", "krw": "₩"}
_SCALES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def currency_label(vs_currency: str) -> str:
    """USD, EUR, BTC: the currency code as an axis label shows it."""
    return vs_currency.upper()


def interval_words(interval: str) -> str:
    """'1h' -> 'hourly', '4h' -> '4-hour'; an unknown name as it is."""
    return INTERVAL_WORDS.get(interval, interval)


def coin_label(row) -> str:
    """'Bitcoin (BTC)', from anything with a coin's name and symbol (a dict, a pandas row)."""
    return f"{row['name']} ({str(row['symbol']).upper()})"


def compact(value: float | None, digits: int = 3) -> str:
    """1234567 -> '1.23 M'; smaller than a thousand stays as it is."""
    if _missing(value):
        return "–"
    for scale, suffix in _SCALES:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {suffix}"
    return f"{value:.{digits}g}"


def _with_currency(text: str, vs_currency: str) -> str:
    symbol = CURRENCY_SYMBOLS.get(vs_currency.lower())
    if symbol is None:
        return f"{text} {currency_label(vs_currency)}"
    return f"-{symbol}{text[1:]}" if text.startswith("-") else f"{symbol}{text}"


def money(value: float | None, vs_currency: str, digits: int = 3) -> str:
    """A large amount in its currency: '$2.23 T', '1.5 B BTC'."""
    if _missing(value):
        return "–"
    return _with_currency(compact(value, digits), vs_currency)


def price_text(value: float | None) -> str:
    """A price with the digits that matter: 111,688 / 2.97 / 0.00001287."""
    if _missing(value):
        return "–"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 1:
        return f"{value:,.2f}"
    if size == 0:
        return "0"
    decimals = -math.floor(math.log10(size)) + 3
    return f"{value:.{decimals}f}"


def axis_number(value: float) -> str:
    """A round axis tick with no trailing zeros: 0.01, 1, 1,000."""
    if value == 0 or _missing(value):
        return "0"
    decimals = max(0, -math.floor(math.log10(abs(value)) + 1e-9))
    return f"{value:,.{decimals}f}"


def price(value: float | None, vs_currency: str) -> str:
    """A price in its currency: '$111,688', '$0.00001287'."""
    if _missing(value):
        return "–"
    return _with_currency(price_text(value), vs_currency)


def percent(value: float | None, signed: bool = True, digits: int = 2) -> str:
    """A value already in percent: '+1.25 %'."""
    if _missing(value):
        return "–"
    return f"{value:+.{digits}f} %" if signed else f"{value:.{digits}f} %"


def duration(seconds: float | None) -> str:
    """A length of time in its two largest units, rounded to the second: '45s', '7m', '6m40s',
    '1h05m', '11h35m', '3d', '2d3h'. The one way durations are written, in the command line's
    reports, the validation report and the dashboard."""
    if _missing(seconds):
        return "–"
    total = round(abs(seconds))
    sign = "-" if seconds < 0 and total else ""
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days}d{hours}h" if hours else f"{days}d"
    elif hours:
        text = f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    elif minutes:
        text = f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    else:
        text = f"{secs}s"
    return sign + text
