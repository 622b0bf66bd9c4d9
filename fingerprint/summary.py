"""End-of-run summary table and the terminal progress bar (both on stderr)."""

from __future__ import annotations

import time
from typing import Any, TextIO


class Progress:
    """A one-line progress bar: lines, lines/s, bytes read of total and ETA.

    Silent unless enabled and the stream is a terminal, so logs and pipes stay clean.
    """

    def __init__(self, stream: TextIO | None, total_bytes: int | None) -> None:
        self._stream = stream
        self._total = total_bytes
        self._bytes = 0
        self._lines = 0
        self._started = time.monotonic()
        self._last_draw = 0.0

    @classmethod
    def for_stream(cls, stream: TextIO, total_bytes: int | None, enabled: bool) -> Progress:
        active = enabled and hasattr(stream, "isatty") and stream.isatty()
        return cls(stream if active else None, total_bytes)

    def update(self, bytes_read: int) -> None:
        self._bytes = bytes_read
        self._draw()

    def lines(self, count: int) -> None:
        self._lines = count
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if self._stream is None:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.2:
            return
        self._last_draw = now
        elapsed = max(now - self._started, 1e-9)
        rate = self._lines / elapsed
        text = f"\r{self._lines:,} lines  {rate:,.0f} lines/s"
        if self._total:
            share = min(1.0, self._bytes / self._total)
            eta = elapsed * (1 - share) / share if share > 0 else 0.0
            bar = "#" * int(share * 20)
            text += f"  [{bar:<20}] {share:6.1%}  ETA {eta:,.0f}s"
        self._stream.write(text + "\x1b[K")
        self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._draw(force=True)
            self._stream.write("\n")
            self._stream.flush()
            self._stream = None


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        "fingerprint summary",
        f"  files {summary['files']}  lines {summary['lines']}  reports {summary['reports']}  "
        f"rejects {summary['rejects']}  blank {summary['blank']}  "
        f"{summary['seconds']} s  ({summary['lines_per_second'] or 0} lines/s)"
        + ("  INTERRUPTED" if summary["interrupted"] else ""),
        f"  flagged {summary['flagged']}  blacklisted {summary['blacklisted']}  "
        f"warnings {summary['warnings']}",
    ]
    sections = (
        ("sessions per grade", "sessions_per_grade"),
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
        width = max(len(str(k)) for k in table)
        lines.extend(f"    {k!s:<{width}}  {v:>9,}" for k, v in table.items())
    return "\n".join(lines) + "\n"
