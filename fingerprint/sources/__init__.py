"""Adapters over outside data: MaxMind databases and user-agent parsing."""
