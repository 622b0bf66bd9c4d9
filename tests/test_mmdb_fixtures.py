"""The test MaxMind databases are reproducible: fixtures/build_mmdb.py rebuilds each
from its YAML source into the very bytes committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures import build_mmdb


@pytest.mark.parametrize(("source", "target"), sorted(build_mmdb.SOURCES.items()))
def test_rebuilt_database_is_byte_identical(source: str, target: str, tmp_path: Path) -> None:
    committed = build_mmdb.HERE / target
    rebuilt = tmp_path / target
    build_mmdb.build(build_mmdb.HERE / source, rebuilt)
    assert rebuilt.read_bytes() == committed.read_bytes(), (
        f"{target} differs from a rebuild of {source}: run python fixtures/build_mmdb.py"
    )
