"""The per-login stages (fingerprint/stages/): each in its own module, handing the
next a frozen keyword-only record, none reaching back into the checker that wires
them."""

from __future__ import annotations

import ast
import ipaddress
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fingerprint.stages
from fingerprint.checker import Prepared, _Pending
from fingerprint.stages import login
from fingerprint.stages.enrich import Enriched

STAGES = Path(fingerprint.stages.__file__).parent


@pytest.mark.parametrize("record", [Prepared, Enriched, _Pending], ids=lambda r: r.__name__)
def test_hand_offs_are_frozen_and_keyword_only(record: type[msgspec.Struct]) -> None:
    fields = msgspec.structs.fields(record)
    assert record.__struct_config__.frozen
    with pytest.raises(TypeError):
        record(*[None] * len(fields))  # positional: refused
    made = record(**{f.name: None for f in fields})
    with pytest.raises(AttributeError):
        setattr(made, fields[0].name, 1)  # frozen: refused


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(STAGES.glob("*.py")), ids=lambda p: p.stem)
def test_no_stage_reaches_back_into_the_checker_or_the_command_line(module: Path) -> None:
    forbidden = {"fingerprint.checker", "fingerprint.cli", "fingerprint.pipeline"}
    assert not (_imports(module) & forbidden)


class _AddressOfMine(ipaddress.IPv4Address):
    """An IPv4 address of another type: written the general way."""


@given(
    st.one_of(
        st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
        st.integers(0, 2**32 - 1).map(_AddressOfMine),
        st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
        st.sampled_from(
            ["0.0.0.0", "255.255.255.255", "10.0.0.1", "100.10.0.100", "::", "::ffff:1.2.3.4"]
        ).map(ipaddress.ip_address),
    )
)
def test_a_logins_address_and_block_read_as_ipaddress_writes_them(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """History's text of the address and of its /24 (IPv4) or /48 (IPv6), whichever
    way they are written: as ``str`` and ``ip_network`` write them."""
    prefix = 24 if address.version == 4 else 48
    assert login.ip_text(address) == str(address)
    block = str(ipaddress.ip_network((address, prefix), strict=False))
    assert login.network_of(address) == block
    # Both at once, in C for an IPv4Address itself where the extension is built.
    assert login.address_texts(address) == (str(address), block)
