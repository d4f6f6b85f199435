"""Constants the behaviour tests share (the fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime

REGION = "eu-west-1"
# A fixed start makes every test's timestamps (and so its periods) repeatable: a Monday, 12:00 UTC.
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
