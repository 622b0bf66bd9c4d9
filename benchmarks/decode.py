"""Per-line CPU of the ways to validate a session record, side by side.

* ``orjson + pydantic``: ``orjson.loads`` then the reference pydantic model
  (``fingerprint._session_reference.Session.model_validate``), the validator before
  issue 20;
* ``msgspec from bytes``: ``msgspec.json.decode`` of the line straight into the
  :class:`fingerprint.session.Session` Struct, then the rules msgspec leaves to the
  library (time, address, lowercase fields, system property text);
* ``orjson + msgspec.convert``: ``orjson.loads`` then ``msgspec.convert`` of the dict
  into the Struct and the same rules (the CLI decodes lines to dicts early, to order
  them by time);
* ``orjson + parse_session``: the same through :func:`fingerprint.session.parse_session`
  (container check and reference fallback included), what the checker calls;
* ``orjson alone``: the decode every variant but the second pays.

Run as ``python -m benchmarks.decode LOG [LOG ...]``; prints µs of CPU
(``time.process_time``) per line, the best of ``--rounds`` interleaved rounds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import orjson

from fingerprint import _session_reference as reference
from fingerprint.session import DEFAULT_NAIVE_TZ, Session, _finish_session, parse_session


def variants() -> dict[str, Callable[[bytes], Any]]:
    naive_tz = DEFAULT_NAIVE_TZ
    context = {"naive_tz": naive_tz}
    decoder = msgspec.json.Decoder(Session)
    return {
        "orjson + pydantic": lambda line: reference.Session.model_validate(
            orjson.loads(line), context=context
        ),
        "msgspec from bytes": lambda line: _finish_session(decoder.decode(line), None, naive_tz),
        "orjson + msgspec.convert": lambda line: _convert(orjson.loads(line), naive_tz),
        "orjson + parse_session": lambda line: parse_session(orjson.loads(line)),
        "orjson alone": orjson.loads,
    }


def _convert(record: dict[str, Any], naive_tz: Any) -> Session:
    return _finish_session(msgspec.convert(record, Session), record, naive_tz)


def per_line_us(parse: Callable[[bytes], Any], lines: Sequence[bytes]) -> float:
    start = time.process_time()
    for line in lines:
        parse(line)
    return (time.process_time() - start) / len(lines) * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    for log in args.logs:
        with open(log, "rb") as handle:
            lines = [line for line in handle if line.strip()]
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, parse in variants().items():
                best[name] = min(best.get(name, float("inf")), per_line_us(parse, lines))
        print(f"{log} ({len(lines):,} lines), µs of CPU per line, best of {args.rounds}:")
        for name, micros in best.items():
            print(f"  {name:<26} {micros:6.2f}")


if __name__ == "__main__":
    main()
