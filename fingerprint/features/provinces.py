"""The 31 provincial divisions of mainland China (kept in :mod:`fingerprint.model`,
which the MaxMind source reads too; re-exported here for existing imports)."""

from __future__ import annotations

from fingerprint.model import CN_PROVINCES_ZH, MAINLAND_PROVINCES, is_mainland_province

__all__ = ["CN_PROVINCES_ZH", "MAINLAND_PROVINCES", "is_mainland_province"]
