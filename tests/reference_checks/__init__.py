"""The device-scoped checks as they were before their per-evaluation costs were cut:
the oracle tests/test_device_checks_fast.py compares the production checks with."""
