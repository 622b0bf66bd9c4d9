"""Reference pipelines the checker is compared with, one line at a time.

* ``floor``: the least any JSON-in, JSON-out checker with a City lookup must do:
  ``orjson.loads``, one ``maxminddb`` City lookup on the same bundled database, a dict
  hit for the user agent, ``orjson.dumps`` of a small result, a buffered file write.
* ``naive``: what a straightforward implementation would write: ``json.loads``, pydantic
  validation with the project's own pydantic ``Session`` model (the reference the
  checker's msgspec decoder is held to, ``fingerprint._session_reference``),
  ``user_agents.parse`` and ``geoip2.database.Reader.city`` for every line,
  ``json.dumps`` of a small result.

Run as ``python -m benchmarks.baselines floor|naive INPUT OUTPUT``; prints one JSON
object (lines, CPU seconds of the loop alone) on stdout. The benchmarks run it in a
subprocess and measure the whole process, startup included, as they do for the CLI.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any


def run_floor(source: str, target: str) -> int:
    import maxminddb
    import orjson

    from fingerprint.sources.maxmind import bundled_city_path

    reader = maxminddb.open_database(bundled_city_path())
    user_agents: dict[str, Any] = {}
    lines = 0
    with open(source, "rb") as handle, open(target, "wb") as out:
        for line in handle:
            record = orjson.loads(line)
            city = reader.get(record["ip"])
            country = city.get("country", {}).get("iso_code") if city else None
            ua = record.get("user_agent") or ""
            family = user_agents.get(ua)
            if family is None:
                family = user_agents[ua] = ua[:16]
            result = {
                "session_id": record.get("session_id"),
                "account_id": record["account_id"],
                "ip_country": country,
                "ua": family,
                "grade": "A",
            }
            out.write(orjson.dumps(result, option=orjson.OPT_APPEND_NEWLINE))
            lines += 1
    return lines


def run_naive(source: str, target: str) -> int:
    import geoip2.database
    import geoip2.errors
    import user_agents

    from fingerprint._session_reference import Session
    from fingerprint.session import DEFAULT_NAIVE_TZ
    from fingerprint.sources.maxmind import bundled_city_path

    reader = geoip2.database.Reader(bundled_city_path())
    context = {"naive_tz": DEFAULT_NAIVE_TZ}
    lines = 0
    with open(source, encoding="utf-8") as handle, open(target, "w", encoding="utf-8") as out:
        for line in handle:
            record = json.loads(line)
            session = Session.model_validate(record, context=context)
            ua = user_agents.parse(session.user_agent or "")
            try:
                country = reader.city(str(session.ip)).country.iso_code
            except geoip2.errors.AddressNotFoundError:
                country = None
            result = {
                "session_id": session.session_id,
                "account_id": session.account_id,
                "ip_country": country,
                "ua": ua.os.family,
                "grade": "A",
            }
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
            lines += 1
    return lines


RUNNERS = {"floor": run_floor, "naive": run_naive}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] not in RUNNERS:
        print("usage: python -m benchmarks.baselines floor|naive INPUT OUTPUT", file=sys.stderr)
        return 2
    name, source, target = args
    started = time.process_time()
    lines = RUNNERS[name](source, target)
    seconds = time.process_time() - started
    print(json.dumps({"baseline": name, "lines": lines, "loop_cpu_s": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
