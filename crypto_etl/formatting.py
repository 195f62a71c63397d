"""Numbers as people read them on charts and in the dashboard: money with its currency, compact
large figures (1.2 T), prices with enough digits for coins worth a fraction of a cent, ages."""

from __future__ import annotations

import math

CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "inr": "₹", "krw": "₩"}
_SCALES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def currency_label(vs_currency: str) -> str:
    """USD, EUR, BTC: the currency code as an axis label shows it."""
    return vs_currency.upper()


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


def age(seconds: float | None) -> str:
    """A duration for a human: '45 s', '12 min', '3.5 h', '2.0 days'."""
    if _missing(seconds):
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
