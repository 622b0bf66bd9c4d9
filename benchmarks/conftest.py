"""Shared fixtures for the benchmarks, and the results table at the end of the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.corpus import ensure_corpus
from benchmarks.generate import ensure_dataset

# The end-to-end log: 200,000 sessions over 20,000 accounts (about ten logins each).
PIPELINE_SESSIONS = 200_000
# The 2M-line memory benchmark: 200,000 accounts.
HUGE_SESSIONS, HUGE_ACCOUNTS = 2_000_000, 200_000


@pytest.fixture(scope="session")
def pipeline_log() -> Path:
    return ensure_dataset(PIPELINE_SESSIONS, verbose=True)


@pytest.fixture(scope="session")
def corpus_log() -> Path:
    """The other shape: 200,000 lines with few distinct user agents and devices."""
    return ensure_corpus(PIPELINE_SESSIONS)


@pytest.fixture(scope="session")
def huge_log() -> Path:
    return ensure_dataset(HUGE_SESSIONS, HUGE_ACCOUNTS, verbose=True)


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own table
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if not report.RESULTS:
        return
    document = report.save(report.RESULTS)
    terminalreporter.section("fingerprint benchmark results (Markdown, for benchmarks/README.md)")
    terminalreporter.write(report.render(document))
    terminalreporter.write_line(f"saved to {report.RESULTS_FILE}")
