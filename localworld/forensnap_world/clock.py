"""The world clock: real UTC plus an offset that tests advance to expire credentials and tokens."""

import datetime
import threading

_lock = threading.Lock()
_offset = datetime.timedelta(0)


def now() -> datetime.datetime:
    """Current world time, naive UTC (moto's convention)."""
    with _lock:
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + _offset


def advance(seconds: float) -> datetime.timedelta:
    """Move the world clock forward; returns the total offset."""
    global _offset
    if seconds < 0:
        raise ValueError("the world clock only moves forward")
    with _lock:
        _offset += datetime.timedelta(seconds=seconds)
        return _offset


def reset() -> None:
    """Back to real time (used by the control API's reset)."""
    global _offset
    with _lock:
        _offset = datetime.timedelta(0)


def offset_seconds() -> float:
    with _lock:
        return _offset.total_seconds()
