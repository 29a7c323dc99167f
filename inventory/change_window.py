"""A deployment's change window, read from its text: when a change to it is allowed.

The text is machine-readable, one or more weekly windows in one time zone, then an
optional note after a semicolon::

    Tue 02:00-04:00 UTC
    Mon-Fri 22:00-06:00 Europe/London; CAB approval for model swaps
    Tue,Thu 01:00-03:00 America/New_York
    Daily 00:00-24:00 UTC
    Sat 08:00-12:00, Sun 08:00-10:00 UTC

Days are Mon…Sun (ranges wrap: Fri-Mon), "Daily" or "Weekdays"/"Weekends". A window whose
end is not after its start runs past midnight into the next day. The time zone is an IANA
name or UTC (the default); it applies to every window of the text. Dashes may be "-", "–"
or "—". `parse` returns the schedule or raises `ChangeWindowError` saying what it expected.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SETS = {
    "daily": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
}
GRAMMAR = (
    'days, a time range and a time zone, e.g. "Tue 02:00-04:00 UTC" or '
    '"Mon-Fri 22:00-06:00 Europe/London; a note"'
)
_DASHES = re.compile(r"\s*[-–—]\s*")
_TIME = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")
_WINDOW = re.compile(
    r"^(?P<days>[A-Za-z,\-–—]+)\s+(?P<start>\d{1,2}:\d{2})\s*[-–—]\s*(?P<end>\d{1,2}:\d{2})$"
)


class ChangeWindowError(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday, in the schedule's time zone
    start: int  # minutes after midnight
    end: int  # minutes after midnight, 1..1440; <= start: runs into the next day

    def contains(self, local: dt.datetime) -> bool:
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.end > self.start:
            return day in self.days and self.start <= minute < self.end
        # Past midnight: the part on the window's own day, and the part on the next day.
        if day in self.days and minute >= self.start:
            return True
        return (day - 1) % 7 in self.days and minute < self.end


@dataclass(frozen=True)
class Schedule:
    windows: tuple[Window, ...]
    tz: str
    note: str = ""

    @property
    def zone(self) -> dt.tzinfo:
        return dt.UTC if self.tz == "UTC" else ZoneInfo(self.tz)

    def contains(self, at: dt.datetime) -> bool:
        """Whether `at` (an aware datetime) falls inside one of the windows."""
        local = at.astimezone(self.zone)
        return any(window.contains(local) for window in self.windows)

    def next_opening(self, at: dt.datetime) -> dt.datetime | None:
        """The first minute at or after `at` inside a window (within a week), in UTC."""
        step = at.replace(second=0, microsecond=0)
        for _ in range(7 * 24 * 4 + 1):
            if self.contains(step):
                return step.astimezone(dt.UTC)
            step += dt.timedelta(minutes=15)
            step = step.replace(minute=step.minute - step.minute % 15)
        return None

    def describe(self) -> str:
        parts = []
        for window in self.windows:
            days = ",".join(DAYS[d].title() for d in sorted(window.days))
            parts.append(f"{days} {_hhmm(window.start)}-{_hhmm(window.end)}")
        return f"{', '.join(parts)} {self.tz}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(text: str) -> int:
    match = _TIME.match(text)
    if not match:
        raise ChangeWindowError(f'"{text}" is not a time of day (HH:MM)')
    value = int(match[1]) * 60 + int(match[2])
    if value > 24 * 60:
        raise ChangeWindowError(f'"{text}" is not a time of day (HH:MM)')
    return value


def _days(text: str) -> frozenset[int]:
    lowered = text.lower()
    if lowered in DAY_SETS:
        return DAY_SETS[lowered]
    days: set[int] = set()
    for part in lowered.split(","):
        bounds = _DASHES.split(part)
        try:
            indexes = [DAYS.index(bound[:3]) for bound in bounds if bound]
        except ValueError:
            raise ChangeWindowError(
                f'"{text}" is not days (Mon…Sun, a range such as Mon-Fri, or Daily)'
            ) from None
        if len(indexes) == 1 and len(bounds) == 1:
            days.add(indexes[0])
        elif len(indexes) == 2 and len(bounds) == 2:
            first, last = indexes
            days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
        else:
            raise ChangeWindowError(f'"{text}" is not days (Mon…Sun or Mon-Fri)')
    return frozenset(days)


def parse(text: str) -> Schedule:
    """The schedule the text names; raises ChangeWindowError saying what was expected."""
    body, _, note = (text or "").partition(";")
    body = body.strip()
    if not body:
        raise ChangeWindowError(f"no change window: expected {GRAMMAR}")
    tz = "UTC"
    head, _, last = body.rpartition(" ")
    if last and not re.search(r"\d", last) and head:
        if last.upper() in {"UTC", "GMT", "Z"}:
            tz = "UTC"
        else:
            try:
                ZoneInfo(last)
            except (ZoneInfoNotFoundError, ValueError):
                raise ChangeWindowError(
                    f'"{last}" is not a time zone (use UTC or an IANA name such as '
                    "Europe/London)"
                ) from None
            tz = last
        body = head.strip()
    windows = []
    for chunk in re.split(r",\s+", body):
        match = _WINDOW.match(chunk.strip())
        if not match:
            raise ChangeWindowError(f'"{chunk.strip()}": expected {GRAMMAR}')
        start, end = _minutes(match["start"]), _minutes(match["end"])
        if start == 24 * 60:
            raise ChangeWindowError("a window cannot start at 24:00")
        if end == 0:
            end = 24 * 60 if start == 0 else 0
        windows.append(
            Window(days=_days(match["days"]), start=start, end=end or 24 * 60)
        )
    return Schedule(windows=tuple(windows), tz=tz, note=note.strip())


def parse_or_none(text: str) -> Schedule | None:
    """The schedule, or None when the text is empty or not machine-readable."""
    try:
        return parse(text)
    except ChangeWindowError:
        return None
