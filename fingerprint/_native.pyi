"""Types of the C extension built from ``fingerprint/_native.c`` (optional)."""

from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

SOURCE_DIGEST: str

def bind(
    namespace: dict[str, Any],
    stability: type[tuple[Any, ...]],
    login_event: type[tuple[Any, ...]],
    /,
) -> None: ...
def stability_windows(
    history: Sequence[Any],
    current: tuple[Any, ...],
    windows_seconds: Sequence[float],
    local_tz: tzinfo,
    unusual_hour_share: float,
    /,
) -> list[Any] | None: ...
