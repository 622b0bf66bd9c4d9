"""The evidence keys each reason code always carries: what its messages may name.

Messages in ``rules/codes.yaml`` are filled from a finding's evidence (``{product}``);
the loader refuses a message naming a key its code does not carry, so a message
that validates never prints a placeholder. Keys a check adds only sometimes (a
SIM's MCC, a marker) are left out on purpose. ``tests/test_rules.py`` runs the
fixtures and checks every finding carries what is listed here.
"""

from __future__ import annotations

from collections.abc import Mapping

_ANONYMOUS_IP = frozenset({"ip", "flag"})
_DEFINITIVE_EMULATOR = frozenset({"product", "matches"})
_TRAVEL = frozenset({"from", "to", "from_at", "to_at", "distance_km", "hours", "speed_kmh"})
_WHOIS = frozenset({"ip", "asn", "network", "cidr", "source"})
_TOOLS = frozenset({"tools"})

EVIDENCE_KEYS: Mapping[str, frozenset[str]] = {
    "EMU_SYSTEM_PROP": _DEFINITIVE_EMULATOR,
    "EMU_BUILD_FINGERPRINT": _DEFINITIVE_EMULATOR,
    "EMU_HARDWARE": _DEFINITIVE_EMULATOR,
    "EMU_DEVICE_IDENTITY": _DEFINITIVE_EMULATOR,
    "EMU_FILE": _DEFINITIVE_EMULATOR,
    "EMU_PACKAGE": _DEFINITIVE_EMULATOR,
    "EMU_LIBRARY": _DEFINITIVE_EMULATOR,
    "EMU_WEAK_SIGNATURE": frozenset({"matches"}),
    "EMU_X86_ABI": frozenset({"cpu_abi", "model"}),
    "EMU_NO_SENSORS": frozenset({"sensors"}),
    "EMU_NO_TELEPHONY": frozenset({"has_telephony", "model"}),
    "EMU_BATTERY_PINNED": frozenset({"level", "charging", "temperature_c"}),
    "EMU_WEAK_TELLS_COMBINED": frozenset({"tells", "count", "facts", "impossible_cpu"}),
    "EMU_CLOUD_PHONE": _DEFINITIVE_EMULATOR,
    "MO_CONTAINER_DATA_DIR": frozenset({"data_dir", "product"}),
    "MO_UID_MISMATCH": frozenset({"uid", "process_uid", "package_app_id", "process_app_id"}),
    "MO_CONTAINER_LIB": frozenset({"lib", "product"}),
    "MO_SYSTEM_DUAL_APP": frozenset({"user_id", "vendor"}),
    "MO_CLONER_INSTALLED": frozenset({"cloners"}),
    "VPN_OS_FLAG": frozenset({"vpn_active"}),
    "VPN_TUNNEL_INTERFACE": frozenset({"interfaces"}),
    "VPN_EXTRA_UTUN": frozenset({"interfaces", "normal_count"}),
    "VPN_HTTP_PROXY": frozenset({"http_proxy"}),
    "VPN_TOR_EXIT": _ANONYMOUS_IP,
    "VPN_ANONYMOUS_VPN": _ANONYMOUS_IP,
    "VPN_PUBLIC_PROXY": _ANONYMOUS_IP,
    "VPN_RESIDENTIAL_PROXY": _ANONYMOUS_IP,
    "VPN_HOSTING_IP": _ANONYMOUS_IP,
    "VPN_HOSTING_ASN": frozenset({"ip", "asn", "org", "kind"}),
    "VPN_HOSTING_WHOIS": _WHOIS | {"org", "kind"},
    "VPN_HOSTING_NAME": _WHOIS | {"pattern"},
    "VPN_TZ_MISMATCH": frozenset({"device_tz", "ip_country"}),
    "VPN_PRIVATE_RELAY": frozenset({"ip", "service"}),
    "GEO_PROVINCE_HOPPING": frozenset({"switches", "provinces", "window_hours", "moves"}),
    "GEO_IMPOSSIBLE_TRAVEL": _TRAVEL,
    "GEO_BORDER_IMPOSSIBLE_TRAVEL": _TRAVEL,
    "TAM_ROOTED": frozenset({"rooted", "root_apps"}),
    "TAM_HOOK_FRAMEWORK": frozenset({"hooks"}),
    "TAM_HOOK_TOOL": frozenset({"products", "tools"}),
    "TAM_DEBUGGER": frozenset({"debugger_attached"}),
    "TAM_DEVICE_MOD_TOOL": frozenset({"tools"}),
    "TAM_CAPTURE_TOOL": frozenset({"tools"}),
    "CON_PLATFORM_MISMATCH": frozenset({"sdk_platform", "ua_platform"}),
    "CON_BRAND_MISMATCH": frozenset({"fingerprint_brand", "brand"}),
    "SHR_DEVICE_SHARED": frozenset({"device_id", "accounts", "window_hours"}),
    "CHN_DEVICE_CHURN": frozenset({"devices", "window_hours"}),
    "FRM_GROUP_CONTROL": _TOOLS,
    "FRM_AUTOMATION": _TOOLS,
    "FRM_REMOTE_CONTROL": _TOOLS,
    "FRM_MOCK_LOCATION": _TOOLS,
    "FRM_VPN_CLIENT": _TOOLS,
    "IPA_MANY_ACCOUNTS": frozenset(
        {"ip", "accounts", "allowance", "window_minutes", "network_kind"}
    ),
    "IPA_CARRIER_BLOCK_ACCOUNTS": frozenset({"network", "accounts", "allowance", "window_minutes"}),
    "DEV_ID_RESET": frozenset({"device_ids", "android_ids", "window_hours"}),
    "DEV_FACTORY_RESET": frozenset({"boot_count", "installed_hours"}),
    "DEV_FORGED_ID": frozenset({"identifier", "identifier_zh", "phones", "window_hours"}),
    "DEV_FARM": frozenset({"accounts", "window_hours"}),
    "BRD_OFF_BRAND": frozenset({"brand", "model"}),
    "AUTH_NO_FACE_VERIFICATION": frozenset({"face_verified"}),
    "HIS_UNAVAILABLE": frozenset({"reason"}),
    "STB_DISPERSED_NETWORKS": frozenset({"networks", "entropy_bits", "window_days"}),
    "STB_NIGHT_LOGINS": frozenset({"night_share", "window_days"}),
    "STB_UNSTABLE_DEVICE": frozenset({"devices", "top_device_share", "window_days"}),
    "STB_UNUSUAL_HOUR_NEW_DEVICE": frozenset({"hour_entropy", "window_days"}),
    "STB_NEW_DEVICE_PROVINCE_CARRIER": frozenset({"window_days"}),
    "STB_LONG_TERM_ANONYMISER": frozenset(
        {"anonymised_logins", "logins", "percent", "window_days"}
    ),
}


def evidence_keys(code: str) -> frozenset[str]:
    """The keys a finding of ``code`` always carries (none for a code no check emits)."""
    return EVIDENCE_KEYS.get(code, frozenset())
