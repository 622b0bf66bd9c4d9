"""fingerprint: how far to trust the device and network behind a login.

>>> from fingerprint import Checker
>>> checker = Checker()                      # build once
>>> report = checker.check(session_dict)     # per login, from any thread
>>> report.grade, report.device_component.veto
"""

from __future__ import annotations

import logging

from fingerprint.checker import Checker, CheckerConfig, CheckerStats
from fingerprint.errors import ConfigError, FingerprintError, InvalidSessionError, RulesError
from fingerprint.report import DeviceComponent, Finding, Report
from fingerprint.session import Session, parse_session

__version__ = "0.1.0"

# The library logs on "fingerprint.*" (history outages and recoveries, rule reloads)
# and never configures logging: the application decides where records go.
logging.getLogger("fingerprint").addHandler(logging.NullHandler())

__all__ = [
    "Checker",
    "CheckerConfig",
    "CheckerStats",
    "ConfigError",
    "DeviceComponent",
    "Finding",
    "FingerprintError",
    "InvalidSessionError",
    "Report",
    "RulesError",
    "Session",
    "__version__",
    "parse_session",
]
