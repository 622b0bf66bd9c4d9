"""The C extension, ``fingerprint._native`` (``fingerprint/_native.c``), when it is
there and current.

It is built by ``pip install`` where a C compiler and Python's headers are found
(``setup.py``, an optional extension) and holds hot loops written once more
against the CPython API: history's packing, in-order append and decoding of an
account's window and its accounts tables, the stability walk (over decoded logins, or
over the packed window itself), the look at a record the session decoder takes before
msgspec, and the reading of a session's time and address in their common spellings.
Each answers as the Python code beside it does, which stays the reference and runs
wherever the extension is missing, turned off (``FINGERPRINT_NATIVE=0``) or built
from another source than the checkout's.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from types import ModuleType


def native_source_matches(digest: str) -> bool:
    """Whether the extension was built from the ``_native.c`` beside this package: a
    checkout's (an editable install) changes under it until the next install builds
    it again. A wheel carries the source it was built from, or none (then its module
    is taken as built with it)."""
    source = Path(__file__).resolve().parent / "_native.c"
    if not source.is_file():
        return True
    return hashlib.sha256(source.read_bytes()).hexdigest() == digest


def _load() -> ModuleType | None:
    if os.environ.get("FINGERPRINT_NATIVE", "").strip() == "0":
        return None
    try:
        from fingerprint import _native
    except ImportError:  # not built: no C compiler at install
        return None
    if not native_source_matches(getattr(_native, "SOURCE_DIGEST", "")):
        warnings.warn(
            "fingerprint._native was built from another fingerprint/_native.c than the"
            " checkout's (reinstall to rebuild it): its loops run in Python",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return _native


NATIVE = _load()
