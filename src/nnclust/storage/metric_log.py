"""Metric logging that stays small however long a run is."""

from __future__ import annotations

MAX_POINTS = 10_000


class DownsampledLog:
    """Forward ``(name, value, step)`` to ``run.log_scalar``, downsampling long series.

    Sacred's MongoDB observer keeps each metric of a run in one document, and MongoDB
    refuses documents over 16 MB. The first `max_points` values of a metric are all
    kept; after that, values between max_points * 2^(j-1) and max_points * 2^j calls
    are kept one in 2^j. A series of N values thus keeps about
    max_points * (1 + log2(N / max_points) / 2) points: 10,000 values take ~0.5 MB,
    a million ~2 MB. The run's own history (for plots) is kept whole in `history`.
    """

    def __init__(self, run, max_points: int = MAX_POINTS):
        if max_points < 1:
            raise ValueError(f"max_points must be >= 1, got {max_points}")
        self.run = run
        self.max_points = max_points
        self.calls: dict[str, int] = {}
        self.history: dict[str, list[float]] = {}

    def __call__(self, name: str, value: float, step: int) -> None:
        self.history.setdefault(name, []).append(value)
        c = self.calls.get(name, 0)
        self.calls[name] = c + 1
        stride = 1 if c < self.max_points else 2 ** (c // self.max_points).bit_length()
        if c % stride == 0:
            self.run.log_scalar(name, value, step)
