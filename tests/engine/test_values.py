from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from syncs.core.errors import MalformedResponseError
from syncs.exact.values import (
    clean_text,
    exact_date,
    exact_datetime,
    to_bool,
    to_decimal,
    to_int,
    to_uuid,
    without_metadata,
)


def ms(wall: datetime) -> str:
    """How Exact writes an Amsterdam wall time: its digits as if they were UTC."""
    return f"/Date({int(wall.replace(tzinfo=UTC).timestamp() * 1000)})/"


def test_recorded_value_is_amsterdam_summer_time() -> None:
    # Recorded Modified of "Exact Software France": wall time 2018-09-21 04:19:44.913 in Amsterdam (CEST, +2).
    assert exact_datetime("/Date(1537503584913)/") == datetime(2018, 9, 21, 2, 19, 44, 913000, tzinfo=UTC)


def test_winter_time_is_one_hour_ahead_of_utc() -> None:
    assert exact_datetime(ms(datetime(2024, 1, 15, 10, 0))) == datetime(2024, 1, 15, 9, 0, tzinfo=UTC)


def test_summer_time_is_two_hours_ahead_of_utc() -> None:
    assert exact_datetime(ms(datetime(2024, 7, 15, 10, 0))) == datetime(2024, 7, 15, 8, 0, tzinfo=UTC)


def test_dst_switch_days() -> None:
    # 2024-03-31 02:00 -> 03:00 (spring forward); 2024-10-27 03:00 -> 02:00 (fall back).
    assert exact_datetime(ms(datetime(2024, 3, 31, 1, 30))) == datetime(2024, 3, 31, 0, 30, tzinfo=UTC)
    assert exact_datetime(ms(datetime(2024, 3, 31, 3, 30))) == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    # The repeated hour is ambiguous in Exact's encoding: the first (summer time) instant is taken.
    assert exact_datetime(ms(datetime(2024, 10, 27, 2, 30))) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    assert exact_datetime(ms(datetime(2024, 10, 27, 3, 30))) == datetime(2024, 10, 27, 2, 30, tzinfo=UTC)


def test_result_is_aware_utc() -> None:
    value = exact_datetime("/Date(1725882549703)/")
    assert value is not None and value.utcoffset() == timedelta(0)


def test_iso_strings_defensively() -> None:
    assert exact_datetime("2024-07-15T10:00:00") == datetime(2024, 7, 15, 8, 0, tzinfo=UTC)
    assert exact_datetime("2024-07-15T10:00:00Z") == datetime(2024, 7, 15, 10, 0, tzinfo=UTC)
    assert exact_datetime("2024-07-15T10:00:00+01:00") == datetime(2024, 7, 15, 9, 0, tzinfo=UTC)
    aware = datetime(2024, 7, 15, 10, 0, tzinfo=timezone(timedelta(hours=3)))
    assert exact_datetime(aware) == datetime(2024, 7, 15, 7, 0, tzinfo=UTC)
    assert exact_datetime("/Date(1537503584913+0200)/") == exact_datetime("/Date(1537503584913)/")


def test_nulls() -> None:
    for reader in (exact_datetime, exact_date, to_decimal, to_int, to_bool, to_uuid, clean_text):
        assert reader(None) is None


def test_exact_date_is_the_local_date() -> None:
    assert exact_date("/Date(1723420800000)/") == date(2024, 8, 12)  # recorded InvoiceDate, local midnight
    assert exact_date(ms(datetime(2024, 8, 12, 23, 30))) == date(2024, 8, 12)  # 21:30 UTC, still the 12th
    assert exact_date("2024-08-12") == date(2024, 8, 12)
    assert exact_date("2024-08-12T00:00:00") == date(2024, 8, 12)


def test_numbers_from_strings_and_floats() -> None:
    assert to_decimal("2.00") == Decimal("2.00")
    assert to_decimal(0.1) == Decimal("0.1")  # via str: not 0.1000000000000000055...
    assert to_decimal(316.5) == Decimal("316.5")
    assert to_decimal(3) == Decimal(3)
    assert to_decimal(" 1e3 ") == Decimal("1000")
    assert to_int("24700001") == 24700001
    assert to_int("42L") == 42
    assert to_int(50.0) == 50
    assert to_int("8020.0") == 8020


def test_booleans_from_strings_and_numbers() -> None:
    assert to_bool("true") is True
    assert to_bool("False") is False
    assert to_bool("1") is True
    assert to_bool(0) is False
    assert to_bool(True) is True


def test_text_and_codes() -> None:
    assert clean_text("           0000001") == "0000001"
    assert clean_text("FR ") == "FR"
    assert clean_text("   ") is None
    assert clean_text(70) == "70"


def test_uuid() -> None:
    key = "454a5d46-ee70-4ed1-9375-9cfedeb138cd"
    assert to_uuid(key) == uuid.UUID(key)
    assert to_uuid(f"guid'{key}'") == uuid.UUID(key)


@pytest.mark.parametrize(
    ("reader", "value"),
    [
        (exact_datetime, "/Date(abc)/"),
        (exact_datetime, "yesterday"),
        (exact_datetime, 1537503584913),
        (exact_date, "2024-13-01"),
        (to_decimal, "12,5"),
        (to_decimal, "NaN"),
        (to_decimal, True),
        (to_decimal, float("inf")),
        (to_int, "12.5"),
        (to_int, "twelve"),
        (to_int, True),
        (to_int, [1]),
        (to_bool, "yes"),
        (to_bool, 2),
        (to_uuid, "not-a-guid"),
        (to_uuid, 12),
        (clean_text, {"a": 1}),
        (clean_text, "a\x00b"),
    ],
)
def test_bad_values_name_the_field(reader: object, value: object) -> None:
    with pytest.raises(MalformedResponseError, match="field AmountDC"):
        reader(value, "AmountDC")  # type: ignore[operator]


def test_without_metadata() -> None:
    row = {
        "__metadata": {"uri": "u", "type": "t"},
        "ID": "x",
        "Lines": {"__deferred": {"uri": "u"}},
        "N": None,
    }
    assert without_metadata(row) == {"ID": "x", "N": None}
    assert "__metadata" in row  # the input is left alone
