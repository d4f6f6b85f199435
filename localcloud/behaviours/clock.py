"""The virtual clock every behaviour runs on: schedules, rollout bakes, alarm periods, metric timestamps.

Time moves only when someone moves it (``advance``), or, for a user exploring a long-running
emulator, when it follows wall time (``follow``, optionally accelerated). Listeners (alarm
evaluation, schedules, rollouts) run at every minute boundary the clock crosses, in order, so
advancing ten minutes at once sees the same transitions as ten one-minute steps: a run is
repeatable and a 10-minute bake takes milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Listener = Callable[[datetime], None]
# CloudWatch evaluates alarms once a minute; nothing here needs a finer step.
STEP_SECONDS = 60


class Clock:
    """Timezone-aware UTC time that moves in explicit steps.

    Parameters
    ----------
    start:
        The first instant; defaults to the current wall time floored to the minute, so metric
        timestamps look plausible to a user reading them with the ``aws`` CLI.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime.now(UTC).replace(second=0, microsecond=0)
        if start.tzinfo is None:
            raise ValueError("start: expected a timezone-aware datetime (UTC)")
        self._now = start.astimezone(UTC)
        # Nothing on this clock happened before it: readers bound their look-back here.
        self.started = self._now
        self._listeners: list[Listener] = []
        # Re-entrant: a listener may read the clock, or start work that reads it.
        self._lock = threading.RLock()
        self._follower: threading.Thread | None = None
        self._stop_following = threading.Event()

    def now(self) -> datetime:
        return self._now

    def naive_now(self) -> datetime:
        """The time as moto stores it (naive UTC)."""
        return self._now.replace(tzinfo=None)

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def tick(self) -> None:
        """Run every listener at the current instant without moving time."""
        with self._lock:
            for listener in list(self._listeners):
                listener(self._now)

    def advance(self, seconds: float) -> datetime:
        """Move time forward, running the listeners at each minute boundary crossed and at the end."""
        if seconds < 0:
            raise ValueError(f"seconds: {seconds} is negative; the clock never goes back")
        with self._lock:
            end = self._now + timedelta(seconds=seconds)
            while self._now < end:
                into_step = self._now.timestamp() % STEP_SECONDS
                boundary = self._now + timedelta(seconds=STEP_SECONDS - into_step)
                self._now = min(boundary, end)
                self.tick()
            return self._now

    def follow(self, speed: float = 1.0, interval: float = 1.0) -> None:
        """Advance with wall time (``speed`` virtual seconds per real second) until :meth:`stop_following`."""
        if speed <= 0:
            raise ValueError(f"speed: {speed} must be above 0")
        self.stop_following()
        self._stop_following.clear()

        def run() -> None:
            last = time.monotonic()
            while not self._stop_following.wait(interval):
                current = time.monotonic()
                self.advance((current - last) * speed)
                last = current

        self._follower = threading.Thread(target=run, name="mlops-clock", daemon=True)
        self._follower.start()

    @property
    def following(self) -> bool:
        return self._follower is not None and self._follower.is_alive()

    def stop_following(self) -> None:
        if self._follower is not None:
            self._stop_following.set()
            self._follower.join()
            self._follower = None
