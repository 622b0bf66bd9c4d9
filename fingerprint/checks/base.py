"""What a check is, what it sees and what it returns.

After pySigma and bandit: a check is a frozen dataclass whose fields are its
thresholds (built as ``Check(**config)``); it returns evidence as :class:`Hit`
values and never formats messages or assigns points. The runner stamps the
check name, severity and messages from ``rules/codes.yaml``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from operator import attrgetter
from typing import Any, ClassVar

import msgspec

from fingerprint.features.identity import NO_IDENTITY, DeviceIdentity
from fingerprint.features.records import Features
from fingerprint.features.stability import Stability, StabilityRequest
from fingerprint.history import HistoryView, LoginEvent
from fingerprint.rules import RuleSet, Severity, Threshold
from fingerprint.session import Session


class Hit(msgspec.Struct, frozen=True):
    """Evidence for one reason code. ``severity`` overrides the catalogue's when set."""

    code: str
    evidence: dict[str, Any]
    severity: Severity | None = None


class NotEvaluated(msgspec.Struct, frozen=True):
    """The check's signals are absent for this session: it neither passed nor failed."""

    reason: str


Outcome = list[Hit] | NotEvaluated


class CheckContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a check reads of one login. A frozen, keyword-only msgspec struct, not a
    dataclass: the checker builds two per login, at ~0.1 µs each against ~1 µs."""

    session: Session
    features: Features
    history: HistoryView | None  # None when history is unavailable (store down)
    current_event: LoginEvent | None = None
    history_error: str | None = None
    late_by: float | None = None  # seconds behind the newest line, for late arrivals
    fail_closed: bool = False  # history unavailable: report it as a finding
    stability: dict[float, Stability] | None = None  # window days -> account stability
    whois: Any = None  # a WhoisRecord for IPs no ASN database covers (--whois)
    identity: DeviceIdentity = NO_IDENTITY  # the device recognised from its attributes


class HistoryIndex(Enum):
    """The parts of history a check can read (:class:`~fingerprint.history.HistoryView`)."""

    ACCOUNT = "account"  # the account's earlier logins: account_events
    DEVICE = "device"  # the accounts on the same device: device_accounts
    ADDRESS = "address"  # the accounts on the same address and block: ip/block_accounts
    LINKS = "links"  # the identity links this login adds to: links


@dataclass(frozen=True, slots=True, kw_only=True)
class Needs:
    """What a check reads besides its session and features, declared as class data:
    the engine plans history's windows and the derived features from these
    declarations, never from a check's name or its thresholds' names."""

    history: frozenset[HistoryIndex] = frozenset()
    # The account's stability features (ctx.stability), over the windows the check
    # asks for in :meth:`Check.stability_request`.
    stability: bool = False
    # Other checks' word on the login's IP: whether it is an anonymising exit or a
    # privacy relay's egress (LoginEvent.ip_anonymous and ip_relay, in the current
    # login and in history, and the stability features' anonymised logins), which the
    # checks that declare ``marks_anonymous_exit`` or ``relay_codes`` decide. A reader
    # runs after them; the engine warns when it reads marks no enabled check makes.
    exit_marks: bool = False


class Check:
    """Base class. Subclasses are frozen dataclasses; see module docstring."""

    name: ClassVar[str]
    codes: ClassVar[tuple[str, ...]]
    needs: ClassVar[Needs] = Needs()
    # Derived from ``needs``: the check runs after the login is recorded in history.
    uses_history: ClassVar[bool] = False
    # What this check tells the rest of the run about the login's IP: a confident
    # finding of it means an anonymising exit (VPN, proxy, Tor, hosting), no location
    # of the user's; ``relay_codes`` mean a privacy relay's egress (no location, no VPN).
    marks_anonymous_exit: ClassVar[bool] = False
    relay_codes: ClassVar[frozenset[str]] = frozenset()
    # True when the outcome depends only on the device and app blocks, the user agent
    # and the device features: the checker then reuses it for a device seen before.
    # Not on what changes from login to login, which the reuse's key leaves out: the
    # device id, the battery's level, the boot's and the install's facts
    # (fingerprint.stages.verdict.DeviceMemo.key).
    device_scoped: ClassVar[bool] = False
    # The thresholds checks.yaml may set, with the type and range each accepts: the
    # rules loader refuses anything else before the check is built.
    thresholds: ClassVar[Mapping[str, Threshold]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        needs = cls.needs
        # The exit marks are set once the session checks have run, on the login that
        # history records: a reader of them runs with the history checks.
        cls.uses_history = bool(needs.history) or needs.stability or needs.exit_marks
        if cls.uses_history and (cls.marks_anonymous_exit or cls.relay_codes):
            raise TypeError(
                f"{cls.__name__} marks anonymous exits or relays, so it must run before "
                "history records the login: it cannot also read history, stability or "
                "the exit marks (Check.needs)"
            )

    def evaluate(self, ctx: CheckContext) -> Outcome:
        raise NotImplementedError

    def history_seconds(self) -> float:
        """How far back the check reads the history it declares (0: the latest only)."""
        return 0.0

    def history_members(self) -> int:
        """How many accounts per address it may count (``HistoryIndex.ADDRESS``): the
        store keeps at least one more, so a count can pass every allowance."""
        return 0

    def stability_request(self) -> StabilityRequest | None:
        """The stability windows it reads, when it declares ``Needs(stability=True)``."""
        return None

    @classmethod
    def compile(cls, rules: RuleSet, config: dict[str, Any]) -> Check:
        """Build the check from its thresholds (validated against ``thresholds`` by the
        rules loader); override to precompile rule data."""
        return cls(**config)


class HoursWindow:
    """For a check whose ``window_hours`` threshold is how far back it reads history:
    list it before :class:`Check` in the bases."""

    window_hours: float

    def history_seconds(self) -> float:
        return self.window_hours * 3600


# A history window: over a year is more than any store keeps.
WINDOW_HOURS = Threshold(
    kind="number", minimum=0, exclusive_minimum=True, maximum=8784, unit="hours"
)
# How many of something (switches, accounts, devices) make a finding.
COUNT = Threshold(kind="count", minimum=1, maximum=100_000)
SHARE = Threshold(kind="number", minimum=0, maximum=1)


def logins_since(events: Sequence[LoginEvent], since: float) -> Sequence[LoginEvent]:
    """The logins at or after ``since``: history is oldest first, so a binary search
    finds them; a 24-hour check need not walk a 30-day window."""
    return events[bisect_left(events, since, key=_TS) :]


_TS = attrgetter("ts")


def login_ts(ctx: CheckContext) -> float:
    """The login's epoch seconds. The checker's current event carries them already:
    ``session.ts.timestamp()`` costs ~0.3 µs on an aware datetime."""
    event = ctx.current_event
    return event.ts if event is not None else ctx.session.ts.timestamp()


def history_unavailable(ctx: CheckContext) -> NotEvaluated | None:
    if ctx.history is None:
        return NotEvaluated(ctx.history_error or "history unavailable")
    return None
