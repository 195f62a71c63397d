"""Numbers as the charts and the dashboard print them."""

from __future__ import annotations

import math

from crypto_etl import formatting as fmt


def test_money_is_compact_with_its_currency():
    assert fmt.money(2.227e12, "usd") == "$2.23 T"
    assert fmt.money(-3e9, "eur") == "-€3 B"
    assert fmt.money(5e6, "btc") == "5 M BTC"
    assert fmt.money(None, "usd") == fmt.money(math.nan, "usd") == "–"


def test_prices_keep_the_digits_that_matter():
    assert fmt.price(111688, "usd") == "$111,688"
    assert fmt.price(2.97, "usd") == "$2.97"
    assert fmt.price(1.287e-05, "usd") == "$0.00001287"


def test_percent_durations_and_axis_numbers():
    assert fmt.percent(-0.86194) == "-0.86 %"
    assert (
        fmt.duration(400) == "6m40s"
        and fmt.duration(30) == "30s"
        and fmt.duration(3 * 86400) == "3d"
    )
    assert [fmt.axis_number(v) for v in (0.01, 1, 1000)] == ["0.01", "1", "1,000"]


def test_durations_show_their_two_largest_units():
    assert [fmt.duration(s) for s in (0, 59.6, 300, 3900, 41700, 183600)] == [
        "0s",
        "1m",
        "5m",
        "1h05m",
        "11h35m",
        "2d3h",
    ]
    assert fmt.duration(-90) == "-1m30s" and fmt.duration(None) == fmt.duration(math.nan) == "–"
