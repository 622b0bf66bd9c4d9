"""Rule data (YAML). A package only so that the wheel ships it as ``fingerprint._rules``."""
