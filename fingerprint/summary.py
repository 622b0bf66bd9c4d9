"""End-of-run summary table and the terminal progress bar (both on stderr)."""

from __future__ import annotations

import shutil
import time
from typing import Any, TextIO

from fingerprint.terminal import terminal_safe


class Progress:
    """A one-line progress display: lines done, lines/s, share of the input bytes read
    (compressed bytes for gzip) and the time left.

    A run goes through stages (:meth:`stage`): a scan for time order, a sort, the
    check, and the check again when a log checked as it streamed turns out to be out
    of order. Each stage's share, rate and time left count from its own start; the
    time shown last is the run's. The check of a sorted input reads our own sorted
    runs, not the input's bytes: its share is of the lines the scan counted.

    On a terminal it redraws one line in place a few times a second, from the
    ``delay``-th second on (a short run shows nothing). It stays silent when the stream
    is not a terminal, unless forced (``--progress``): then it writes a plain line every
    ``log_every`` seconds, fit for a log file.
    """

    def __init__(
        self,
        stream: TextIO | None,
        total_bytes: int | None,
        *,
        terminal: bool = True,
        delay: float = 0.5,
        log_every: float = 10.0,
    ) -> None:
        self._stream = stream
        self._total = total_bytes
        self._terminal = terminal
        self._every = 0.2 if terminal else log_every
        self._bytes = 0
        self._lines = 0
        self._started = time.monotonic()
        self._last_draw = self._started + delay - self._every
        self._drawn = False
        # The stage under way (see stage()): the check of the input as it streams.
        self._label = ""
        self._total_lines: int | None = None
        self._stage_started = self._started

    @classmethod
    def for_stream(
        cls, stream: TextIO, total_bytes: int | None, enabled: bool, *, force: bool = False
    ) -> Progress:
        terminal = hasattr(stream, "isatty") and stream.isatty()
        active = force or (enabled and terminal)
        return cls(stream if active else None, total_bytes, terminal=terminal)

    def stage(self, label: str = "", *, total_lines: int | None = None) -> None:
        """Start a stage: ``label`` says what it does (``""``: the check, counted in
        lines), and its counters start from zero. ``total_lines``: its share is of
        these lines, not of the input's bytes (the check of a sorted input)."""
        self._label = label
        self._total_lines = total_lines
        self._bytes = self._lines = 0
        self._stage_started = time.monotonic()
        self._draw(force=self._drawn)  # a line on the screen says at once what runs now

    def update(self, bytes_read: int) -> None:
        self._bytes = bytes_read
        self._draw()

    def lines(self, count: int) -> None:
        self._lines = count
        self._draw()

    def text(self, now: float | None = None) -> str:
        """The line as it would be drawn now."""
        now = now or time.monotonic()
        elapsed = max(now - self._stage_started, 1e-9)
        # A scan or a sort says so; the check counts its lines.
        text = self._label or f"{self._lines:,} lines  {self._lines / elapsed:,.0f} lines/s"
        share = self._share()
        if share is not None:
            bar = "#" * int(share * 20)
            text += f"  [{bar:<20}] {share:6.1%}"
            if 0 < share < 1:
                text += f"  ETA {_duration(elapsed * (1 - share) / share)}"
        return text + f"  {_duration(now - self._started)}"

    def _share(self) -> float | None:
        if self._total_lines is not None:
            return min(1.0, self._lines / self._total_lines) if self._total_lines else 1.0
        if self._total:
            return min(1.0, self._bytes / self._total)
        return None

    def _draw(self, force: bool = False) -> None:
        if self._stream is None:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self._every:
            return
        self._last_draw = now
        self._drawn = True
        text = self.text(now)
        if self._terminal:
            width = shutil.get_terminal_size().columns - 1
            self._stream.write("\r" + text[:width] + "\x1b[K")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def clear(self) -> None:
        """Wipe the line drawn on the terminal, so a message can be printed; the next
        update draws it again."""
        if self._stream is not None and self._terminal and self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()

    def close(self) -> None:
        """The final figures: on a terminal over the line drawn so far (nothing if the
        run was too short to draw one), elsewhere (forced) as a last line."""
        if self._stream is not None and (self._drawn or not self._terminal):
            self._draw(force=True)
            if self._terminal:
                self._stream.write("\n")
            self._stream.flush()
        self._stream = None


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        "fingerprint summary",
        f"  files {summary['files']}  lines {summary['lines']}  reports {summary['reports']}  "
        f"rejects {summary['rejects']}  blank {summary['blank']}  "
        f"{summary['seconds']} s  ({summary['lines_per_second'] or 0} lines/s)"
        + ("  INTERRUPTED" if summary["interrupted"] else ""),
        f"  accounts {summary['accounts']}  flagged {summary['flagged']}  "
        f"blacklisted {summary['blacklisted']}  "
        f"warnings {summary['warnings']}",
    ]
    if summary.get("history_degraded"):
        lines.append(
            f"  history unavailable for {summary['history_degraded']} sessions "
            "(graded without history checks)"
        )
    lines.extend(
        f"  input shrank while read: {terminal_safe(path)}"
        for path in summary.get("inputs_shrunk", [])
    )
    order = summary.get("order") or {}
    if line := order_line(order):
        lines.append(line)
    elif order.get("reordered"):
        lines.append(f"  {order['reordered']:,} lines put back in time order within the skew")
    sections = (
        ("sessions per grade", "sessions_per_grade"),
        ("device component status (pending: not a pass)", "sessions_per_device_status"),
        ("pending, waiting for", "pending_reasons"),
        ("accounts per grade", "accounts_per_grade"),
        ("sessions per check", "sessions_per_check"),
        ("top reason codes", "top_codes"),
        ("top provinces", "top_provinces"),
        ("rejects", "reject_reasons"),
    )
    for title, key in sections:
        table = summary.get(key) or {}
        if not table:
            continue
        lines.append(f"  {title}:")
        # Keys can come from input (provinces, reasons naming fields): escaped first,
        # so control characters neither act on the terminal nor break the columns.
        keys = {terminal_safe(str(k)): v for k, v in table.items()}
        width = max(len(k) for k in keys)
        lines.extend(f"    {k:<{width}}  {v:>9,}" for k, v in keys.items())
    return "\n".join(lines) + "\n"


def order_line(order: dict[str, Any]) -> str:
    """One line on how far the input was from time order; empty when it was in order
    within the skew (lines put back in order by the buffer are shown only in the table)."""
    parts = []
    if order.get("late"):
        seconds = _span(order["max_late_seconds"])
        parts.append(f"{_lines(order['late'])} late (at most {seconds} behind)")
    if order.get("ahead"):
        seconds = _span(order["max_ahead_seconds"])
        parts.append(f"{_lines(order['ahead'])} far ahead (at most {seconds})")
    if not parts:
        return ""
    if order.get("reordered"):
        parts.append(f"{order['reordered']:,} reordered within the skew")
    if order.get("sorted"):
        how = "sorted by time before checking, reports in time order"
    else:
        how = "streamed: late lines were checked as they came, with a warning"
    return f"  input out of time order: {', '.join(parts)}; {how}"


def _lines(count: int) -> str:
    return f"{count:,} line" if count == 1 else f"{count:,} lines"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.0f} s"
