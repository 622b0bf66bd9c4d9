"""The checker on Apache Spark (PySpark): same reports as the CLI, no scheduler of ours.

``check_sessions(df) -> (reports, rejects)`` runs plain Spark stages:

1. **prepare** (``mapInArrow``, no shuffle): decode each row (a raw JSON line, or
   session columns), validate it with :func:`fingerprint.session.parse_session` and
   pull out ``account_id``, the time, the address keys and the device identity. Bad
   rows become rejects here, with the CLI's error text.
1b. **what other accounts did** (Spark windows by address, /24, identity link and
   device): a partition only sees its own accounts, so the earlier logins of every
   account on the same address, identifiers and device are collected over *all*
   sessions and joined to each row.
2. **check** (``repartition(n, "account_id").sortWithinPartitions("account_id",
   "ts", "row_id")`` then ``mapInArrow``): one :class:`~fingerprint.checker.Checker`
   per Python worker (cached by config), history in memory and reset per account,
   answering the cross-account questions (device sharing, ip_accounts, identity
   links) with what stage 1b collected. So every report, findings and grade
   included, is made by the checker itself, as in a one-process run.

The result equals ``fingerprint check --workers 1`` on input in time order (the
Spark job orders each account's logins by time itself, like the CLI with an
unbounded ``--max-skew``). See docs/SPARK.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import msgspec
import orjson
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fingerprint.checker import Checker, CheckerConfig, build_engine
from fingerprint.checks.identity import identity_links
from fingerprint.errors import ConfigError, FingerprintError, InvalidSessionError
from fingerprint.features.identity import IdentityHasher, identity_of, identity_text
from fingerprint.history import HistoryView, Link, LoginEvent, MemoryHistoryStore, Windows, ip_keys
from fingerprint.inputs import (
    MAX_LINE_BYTES,
    Line,
    Reject,
    _slow_path,
    expand_inputs,
    local_format,
    named_format,
)
from fingerprint.options import SPARK, add_checker_options, config_from_args
from fingerprint.outputs import jsonl_line
from fingerprint.report import Report
from fingerprint.rules import load_rules
from fingerprint.session import parse_session
from fingerprint.stages.login import address_texts

SHARED_CODE = "SHR_DEVICE_SHARED"
_BOM = b"\xef\xbb\xbf"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FILE_BITS = 40  # read_session_lines: row_id = file index << 40 | line number
# Top-level blocks that may arrive as JSON text in a string column.
_BLOCKS = frozenset({"device", "app", "network", "auth"})
# Columns that locate a row; never part of the session record.
_LOCATORS = ("row_id", "file", "line", "_corrupt_record")

# --- schemas ------------------------------------------------------------------------

FINDING_TYPE = T.StructType(
    [
        T.StructField("check", T.StringType()),
        T.StructField("code", T.StringType()),
        T.StructField("severity", T.StringType()),
        T.StructField("message", T.StringType()),
        T.StructField("message_zh", T.StringType()),
        T.StructField("evidence_json", T.StringType()),
    ]
)
DEVICE_COMPONENT_TYPE = T.StructType(
    [
        T.StructField("weight", T.DoubleType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("veto", T.BooleanType()),
        T.StructField("reasons", T.ArrayType(T.StringType())),
        T.StructField("status", T.StringType()),
        T.StructField("pending_reasons", T.ArrayType(T.StringType())),
        T.StructField("coverage", T.DoubleType()),
    ]
)
_LOCATION_FIELDS = [
    T.StructField("row_id", T.LongType()),  # input position: sort by it for input order
    T.StructField("file", T.StringType()),  # null unless the input said
    T.StructField("line", T.LongType()),  # 1-based line in ``file``; null unless known
]
#: One row per valid session: report format v1 of SESSION-LOG.md, typed.
REPORT_SCHEMA = T.StructType(
    [
        *_LOCATION_FIELDS,
        T.StructField("session_id", T.StringType()),
        T.StructField("account_id", T.StringType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("grade", T.StringType()),
        T.StructField("score", T.IntegerType()),
        T.StructField("blacklisted", T.BooleanType()),
        T.StructField("findings", T.ArrayType(FINDING_TYPE)),
        T.StructField("contributions", T.MapType(T.StringType(), T.IntegerType())),
        T.StructField("not_evaluated", T.ArrayType(T.StringType())),
        T.StructField("not_evaluated_reasons", T.MapType(T.StringType(), T.StringType())),
        T.StructField("features_json", T.StringType()),
        T.StructField("device_component", DEVICE_COMPONENT_TYPE),
        T.StructField("warnings", T.ArrayType(T.StringType())),
        T.StructField("device_id", T.StringType()),
        # JSON of the report's ``points_scaled`` (null when no scale applied).
        T.StructField("points_scaled_json", T.StringType()),
    ]
)
#: One row per rejected input row, with the CLI's error text.
REJECT_SCHEMA = T.StructType(
    [
        *_LOCATION_FIELDS,
        T.StructField("error", T.StringType()),
        T.StructField("raw", T.StringType()),  # at most 65,536 characters
        T.StructField("raw_truncated", T.BooleanType()),
    ]
)
#: What :func:`read_session_lines` returns: the raw-line input form.
LINES_SCHEMA = T.StructType([*_LOCATION_FIELDS, T.StructField("value", T.BinaryType())])

_LINK_TYPE = T.StructType(
    [T.StructField("name", T.StringType()), T.StructField("members", T.ArrayType(T.StringType()))]
)
_PREPARED_SCHEMA = T.StructType(
    [
        *_LOCATION_FIELDS,
        T.StructField("account_id", T.StringType()),
        T.StructField("ts_us", T.LongType()),
        T.StructField("record", T.BinaryType()),  # JSON of the record (raw line text as is)
        T.StructField("sid", T.StringType()),  # the session id the CLI would derive
        T.StructField("ip_key", T.StringType()),  # where ip_accounts counts the login
        T.StructField("block_key", T.StringType()),
        # The device as history counts it, and the identity links the login adds
        # (fingerprint.checks.identity): stage 2 is handed what other accounts left.
        T.StructField("identity", T.StringType()),
        T.StructField("links", T.ArrayType(_LINK_TYPE)),
        T.StructField("error", T.StringType()),
        T.StructField("raw", T.StringType()),
        T.StructField("raw_truncated", T.BooleanType()),
    ]
)
_REPORT_COLUMNS = [f.name for f in REPORT_SCHEMA.fields]


def _arrow_type(dtype: T.DataType) -> Any:
    """The Arrow type Spark expects back from ``mapInArrow`` for the types used here."""
    simple: dict[type[T.DataType], Any] = {
        T.StringType: pa.string(),
        T.LongType: pa.int64(),
        T.IntegerType: pa.int32(),
        T.DoubleType: pa.float64(),
        T.BooleanType: pa.bool_(),
        T.BinaryType: pa.binary(),
        T.TimestampType: pa.timestamp("us", tz="UTC"),
    }
    if type(dtype) in simple:
        return simple[type(dtype)]
    if isinstance(dtype, T.ArrayType):
        return pa.list_(_arrow_type(dtype.elementType))
    if isinstance(dtype, T.MapType):
        return pa.map_(_arrow_type(dtype.keyType), _arrow_type(dtype.valueType))
    if isinstance(dtype, T.StructType):
        return pa.struct([(f.name, _arrow_type(f.dataType)) for f in dtype.fields])
    raise TypeError(f"no Arrow type for {dtype}")


def _arrow_schema(schema: T.StructType) -> Any:
    return pa.schema([(f.name, _arrow_type(f.dataType)) for f in schema.fields])


_PREPARED_ARROW = _arrow_schema(_PREPARED_SCHEMA)
_REPORT_ARROW = _arrow_schema(REPORT_SCHEMA)


# --- the public entry points --------------------------------------------------------


def read_session_lines(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """Session log files as raw lines, numbered like the CLI numbers them.

    One row per physical line (blank lines included; ``check_sessions`` skips them)
    with ``file`` (the path as given), ``line`` (1-based), ``row_id`` (input order
    across the files) and ``value`` (the line's bytes, invalid UTF-8 kept, so such a
    line is rejected as by the CLI). ``.gz`` files are decompressed. Each path must
    name one file: a directory or glob would be numbered as one stream. Numbering
    costs one counting pass per file.
    """
    frames = []
    for index, path in enumerate(paths):
        # The scan's partitions are the file's splits in order, and
        # monotonically_increasing_id() is documented as partition id << 33 | position.
        scan = spark.read.text(path).select(
            F.col("value").cast("binary").alias("value"),
            F.spark_partition_id().alias("_pid"),
            F.monotonically_increasing_id().bitwiseAND((1 << 33) - 1).alias("_index"),
        )
        counts: dict[int, int] = dict(scan.groupBy("_pid").count().collect())
        offsets, total = [], 0
        for pid in range(max(counts, default=-1) + 1):
            offsets.append(total)
            total += counts.get(pid, 0)
        offset = (
            F.element_at(F.array(*[F.lit(o) for o in offsets]), F.col("_pid") + 1)
            if offsets
            else F.lit(0)
        ).cast("long")
        line = offset + F.col("_index") + 1
        frames.append(
            scan.select(
                (F.lit(index << _FILE_BITS).cast("long") + line).alias("row_id"),
                F.lit(path).alias("file"),
                line.alias("line"),
                "value",
            )
        )
    return functools.reduce(DataFrame.unionAll, frames)


def check_sessions(
    df: DataFrame,
    config: CheckerConfig | None = None,
    *,
    partitions: int | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Grade every session in ``df``; return ``(reports, rejects)``.

    ``df`` is either raw JSON lines (a ``value`` column, string or binary, as from
    :func:`read_session_lines` or ``spark.read.text``) or session log v1 columns
    (``account_id``, ``ts``, ``ip``, ... with ``device``/``app``/``network``/``auth``
    as structs or as JSON strings; a null field counts as absent), as from
    ``spark.read.json``. Optional columns ``row_id`` (input position; default
    ``monotonically_increasing_id()``), ``file`` and ``line`` locate rows; with
    ``file`` and ``line`` a missing ``session_id`` becomes ``<file>:<line>`` as in
    the CLI. ``partitions``: how many account partitions (default
    ``spark.sql.shuffle.partitions``).

    Both results are lazy. ``rejects`` needs only the first, cheap stage; reading
    the input twice is the cost of asking for both.
    """
    config = replace(config or CheckerConfig(), **SPARK.fixed)
    rules = load_rules(config.rules_dir)  # fail fast on the driver
    prepared = _prepared(df, config)
    rejects = prepared.filter(F.col("error").isNotNull()).select(
        *[f.name for f in REJECT_SCHEMA.fields]
    )
    sessions = prepared.filter(F.col("error").isNull()).select(
        "row_id",
        "file",
        "line",
        "account_id",
        "ts_us",
        "record",
        "sid",
        "ip_key",
        "block_key",
        "identity",
        "links",
    )
    windows = build_engine(rules, memo_size=0).windows
    sessions = _with_accounts_per_address(sessions, windows)
    if windows is not None:
        sessions = _with_identity_views(sessions, windows)
    sessions = (
        sessions.repartition(partitions, "account_id")
        if partitions
        else sessions.repartition("account_id")
    )
    checked = sessions.sortWithinPartitions("account_id", "ts_us", "row_id").mapInArrow(
        functools.partial(_check_batches, config, _ip_cap(windows)), REPORT_SCHEMA
    )
    return checked.select(*_REPORT_COLUMNS), rejects


# --- stage 1: prepare ---------------------------------------------------------------


@dataclass(frozen=True)
class _Prepare:
    raw_lines: bool  # a ``value`` column of JSON text; else a ``record`` struct
    naive_tz: tzinfo
    identity_secret: bytes | None = None


def _prepared(df: DataFrame, config: CheckerConfig) -> DataFrame:
    columns = df.columns
    locate: list[Column] = [
        F.col("row_id").cast("long") if "row_id" in columns else F.monotonically_increasing_id(),
        F.col("file").cast("string") if "file" in columns else F.lit(None).cast("string"),
        F.col("line").cast("long") if "line" in columns else F.lit(None).cast("long"),
    ]
    raw_lines = "value" in columns and "account_id" not in columns
    if raw_lines:
        body = [F.col("value").cast("binary").alias("value")]
    else:
        fields = [F.col(f"`{c}`") for c in columns if c not in _LOCATORS]
        corrupt = (
            F.col("_corrupt_record").cast("binary")
            if "_corrupt_record" in columns
            else F.lit(None).cast("binary")
        )
        body = [F.struct(*fields).alias("record"), corrupt.alias("value")]
    selected = df.select(
        locate[0].alias("row_id"), locate[1].alias("file"), locate[2].alias("line"), *body
    )
    secret = config.identity_secret
    secret_bytes = secret.encode("utf-8") if isinstance(secret, str) else secret
    options = _Prepare(raw_lines, config.time_zone, secret_bytes)
    return selected.mapInArrow(functools.partial(_prepare_batches, options), _PREPARED_SCHEMA)


def _prepare_batches(options: _Prepare, batches: Iterator[Any]) -> Iterator[Any]:
    for batch in batches:
        columns = batch.to_pydict()
        record_type = None if options.raw_lines else batch.schema.field("record").type
        rows = []
        for i in range(batch.num_rows):
            file, line = columns["file"][i], columns["line"][i]
            value = columns["value"][i]
            if value is not None:
                row = _prepare_line(value, file, line, options)
            elif record_type is not None:
                record = _plain_struct(columns["record"][i], record_type)
                row = _prepare_record(record, file, line, options)
            else:
                row = None  # a null line: nothing to check, like a blank one
            if row is not None:
                row["row_id"], row["file"], row["line"] = columns["row_id"][i], file, line
                rows.append(row)
        yield pa.RecordBatch.from_pylist(rows, schema=_PREPARED_ARROW)


def _prepare_line(
    raw: bytes, file: str | None, line: int | None, options: _Prepare
) -> dict[str, Any] | None:
    """One raw line, read as ``fingerprint.inputs`` reads it: the same rejects."""
    name, number = file or "", line or 0
    if len(raw) > MAX_LINE_BYTES:
        error = f"line longer than {MAX_LINE_BYTES} bytes"
        return _reject(Reject(name, number, error, raw[:65_536].decode("utf-8", "replace")))
    if line == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    text = raw.strip()
    if not text:
        return None  # blank lines are skipped (the CLI counts them)
    item = _decode(text, name, number)
    if isinstance(item, Reject):
        return _reject(item)
    return _validated(item.record, text, item.raw_text(), file, line, options)


def _prepare_record(
    record: dict[str, Any], file: str | None, line: int | None, options: _Prepare
) -> dict[str, Any]:
    text = orjson.dumps(record, default=str)
    return _validated(record, text, text.decode(), file, line, options)


def _validated(
    record: Any, text: bytes, raw: str, file: str | None, line: int | None, options: _Prepare
) -> dict[str, Any]:
    try:
        session = parse_session(record, naive_tz=options.naive_tz)
    except InvalidSessionError as exc:
        return _reject(Reject(file or "", line or 0, str(exc), raw))
    ip_key, block_key = ip_keys(*address_texts(session.ip))
    device = session.device
    identity = identity_of(device, _hasher(options.identity_secret))
    links = identity_links(identity, device.boot_time if device else None)
    return {
        "account_id": session.account_id,
        "ts_us": (session.ts - _EPOCH) // _MICROSECOND,
        "record": text,
        "sid": f"{file}:{line}" if file is not None and line is not None else None,
        "ip_key": ip_key,
        "block_key": block_key,
        "identity": identity_text(identity, device.device_id if device else None) or None,
        "links": [{"name": name, "members": list(members)} for name, members in links] or None,
    }


@functools.lru_cache(maxsize=4)
def _hasher(secret: bytes | None) -> IdentityHasher:
    return IdentityHasher(secret)


# --- stage 1b: what other accounts left on the same device and identifiers ----------


def _with_identity_views(sessions: DataFrame, windows: Windows) -> DataFrame:
    """Each session with what the one-process history would hand its login from
    *other* accounts: the earlier (ts, members) of every identity link it adds, and
    the earlier (ts, account) logins on its device (the derived key when confident).
    Earlier means inside the window before it, or at the same instant earlier in the
    input, as the CLI (which sorts by time) records them."""
    link_us = round(windows.link_seconds * 1_000_000)
    device_us = round(windows.device_seconds * 1_000_000)
    exploded = sessions.select("row_id", "ts_us", F.explode("links").alias("link")).select(
        "row_id", "ts_us", F.col("link.name").alias("name"), F.col("link.members").alias("members")
    )
    seen = exploded.select(
        "row_id",
        "name",
        _earlier(F.struct("ts_us", "members"), "name", link_us).alias("earlier"),
    )
    links = seen.groupBy("row_id").agg(
        F.collect_list(F.struct("name", "earlier")).alias("_link_views")
    )
    devices = sessions.filter(F.col("identity").isNotNull()).select(
        "row_id",
        _earlier(F.struct("ts_us", "account_id"), "identity", device_us).alias("_device_view"),
    )
    return sessions.join(links, "row_id", "left").join(devices, "row_id", "left")


def _earlier(item: Column, key: str, window_us: int) -> Column:
    before = Window.partitionBy(key).orderBy("ts_us").rangeBetween(-window_us, -1)
    same_instant = (
        Window.partitionBy(key, "ts_us")
        .orderBy("row_id")
        .rangeBetween(Window.unboundedPreceding, -1)
    )
    return F.concat(F.collect_list(item).over(before), F.collect_list(item).over(same_instant))


def _reject(reject: Reject) -> dict[str, Any]:
    out = reject.to_dict()
    return {"error": out["error"], "raw": out["raw"], "raw_truncated": "raw_truncated" in out}


def _decode(text: bytes, file: str, line: int) -> Line | Reject:
    try:
        return Line(file, line, orjson.loads(text), text)
    except orjson.JSONDecodeError as exc:
        result = _slow_path(file, line, text, exc)
        assert isinstance(result, Line | Reject)
        return result


def _plain_struct(value: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """A session struct as JSON-ready values: null fields dropped (absent), maps as
    objects, times as ISO text, blocks given as JSON strings decoded."""
    out: dict[str, Any] = {}
    for field in dtype:
        item = value.get(field.name)
        if item is None:
            continue
        if field.name in _BLOCKS and isinstance(item, str) and item.lstrip()[:1] == "{":
            try:
                out[field.name] = orjson.loads(item)
                continue
            except orjson.JSONDecodeError:
                pass
        out[field.name] = _plain(item, field.type)
    return out


def _plain(value: Any, dtype: Any) -> Any:
    if value is None:
        return None
    if pa.types.is_struct(dtype):
        return _plain_struct(value, dtype)
    if pa.types.is_map(dtype):
        return {key: _plain(item, dtype.item_type) for key, item in value}
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return [_plain(item, dtype.value_type) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


# --- stage 1b: accounts per address (ip_accounts) -----------------------------------

_SEEN_TYPE = T.ArrayType(
    T.StructType(
        [T.StructField("ts_us", T.LongType()), T.StructField("account_id", T.StringType())]
    )
)


def _with_accounts_per_address(sessions: DataFrame, windows: Windows | None) -> DataFrame:
    """What the one-process history answers ip_accounts, counted over every session:
    per row, the (ts, account) of the earlier logins on its address and on its block
    inside the window (and those at the same instant earlier in the input). A
    partition only holds its own accounts, so this is Spark's count, not a store's."""
    if windows is None or not windows.ip_seconds:
        empty = F.lit(None).cast(_SEEN_TYPE)
        return sessions.withColumn("_on_ip", empty).withColumn("_on_block", empty)
    window_us = round(windows.ip_seconds * 1_000_000)
    out = sessions
    for key, column in (("ip_key", "_on_ip"), ("block_key", "_on_block")):
        out = out.withColumn(column, _seen_on(key, window_us))
    return out


def _seen_on(key: str, window_us: int) -> Column:
    """Earlier logins on ``key`` within the window, as an array of (ts_us, account)."""
    # Rows without a key (an IPv6 address has no block) get a partition of their own.
    keyed = F.coalesce(F.col(key), F.concat(F.lit("\u0000"), F.col("row_id").cast("string")))
    earlier = Window.partitionBy(keyed).orderBy("ts_us").rangeBetween(-window_us, -1)
    same_instant = (
        Window.partitionBy(keyed, "ts_us")
        .orderBy("row_id")
        .rowsBetween(Window.unboundedPreceding, -1)
    )
    pair = F.struct("ts_us", "account_id")
    seen = F.concat(F.collect_list(pair).over(earlier), F.collect_list(pair).over(same_instant))
    return F.when(F.col(key).isNotNull(), seen)


def _newest_per_account(
    seen: list[dict[str, Any]] | None, cap: int
) -> tuple[tuple[float, str], ...]:
    """(newest ts, account) per account, the ``cap`` most recent: what the memory
    store keeps per address."""
    if not seen:
        return ()
    newest: dict[str, int] = {}
    for item in seen:
        account, at = item["account_id"], item["ts_us"]
        if at > newest.get(account, -(2**63)):
            newest[account] = at
    ordered = sorted(newest.items(), key=lambda pair: pair[1])[-cap:]
    return tuple((at / 1_000_000, account) for account, at in ordered)


# --- stage 2: check -----------------------------------------------------------------


class _AccountHistory:
    """History for a partition sorted by account: a fresh in-memory store per account.

    Account history needs nothing else; device history is not kept (device sharing
    is counted by Spark over every partition), so memory is one account's window.
    """

    def __init__(self) -> None:
        self._store = MemoryHistoryStore()
        self._account: str | None = None
        # Accounts on the current row's address and block, counted by Spark.
        self.on_ip: tuple[tuple[float, str], ...] = ()
        self.on_block: tuple[tuple[float, str], ...] = ()
        # What other accounts left, computed by Spark for the row being checked.
        self._links: dict[str, tuple[tuple[float, str], ...]] = {}
        self._device: tuple[tuple[float, str], ...] = ()

    def reset(self) -> None:
        self._store = MemoryHistoryStore()
        self._account = None

    def hand(self, links: Any, device: Any) -> None:
        """The cross-account views of the next login (rows of :func:`_with_identity_views`),
        reduced as the in-memory store keeps them: the newest ts per member."""
        self._links = {
            view["name"]: _newest(
                (item["ts_us"], member) for item in view["earlier"] for member in item["members"]
            )
            for view in links or ()
        }
        self._device = _newest((item["ts_us"], item["account_id"]) for item in device or ())

    def record_and_fetch(
        self, event: LoginEvent, windows: Windows, now: float | None = None
    ) -> HistoryView:
        if event.account_id != self._account:
            self.reset()
            self._account = event.account_id
        view = self._store.record_and_fetch(event, replace(windows, ip_seconds=0.0), now)
        view = msgspec.structs.replace(
            view, device_accounts=self._device if event.device_id else ()
        )
        if not windows.ip_seconds:
            return view
        return msgspec.structs.replace(view, ip_accounts=self.on_ip, block_accounts=self.on_block)

    def record_links(
        self, links: Sequence[Link], ts: float, windows: Windows, now: float | None = None
    ) -> dict[str, tuple[tuple[float, str], ...]]:
        return {name: self._links.get(name, ()) for name, _ in links}

    def record_device(self, event: LoginEvent, windows: Windows, now: float | None = None) -> None:
        return None


def _newest(pairs: Iterable[tuple[int, str]]) -> tuple[tuple[float, str], ...]:
    """(ts_us, value) pairs as (ts seconds, value), the newest ts per value."""
    newest: dict[str, int] = {}
    for ts_us, value in pairs:
        if newest.get(value, -1) < ts_us:
            newest[value] = ts_us
    return tuple((ts_us / 1_000_000, value) for value, ts_us in newest.items())


@dataclass
class _Worker:
    checker: Checker
    history: _AccountHistory


_WORKERS: dict[CheckerConfig, _Worker] = {}


def _worker(config: CheckerConfig) -> _Worker:
    """One checker per Python worker process and config (workers are reused)."""
    worker = _WORKERS.get(config)
    if worker is None:
        history = _AccountHistory()
        # No wall clock: a replayed log's logins are its own time, and this store
        # holds one account, so no login can move another's window.
        worker = _Worker(Checker(_localized(config), history=history, clock=None), history)
        _WORKERS[config] = worker
    return worker


def _localized(config: CheckerConfig) -> CheckerConfig:
    """Database and rules paths missing on this machine, looked up among the files
    shipped with ``--files`` / ``SparkContext.addFile`` (by base name)."""
    changes: dict[str, Any] = {}
    for name in ("city_db", "asn_db", "anonymous_ip_db", "rules_dir"):
        path = getattr(config, name)
        if path is None or os.path.exists(path):
            continue
        shipped = _spark_file(os.path.basename(os.fspath(path).rstrip("/")))
        if shipped is not None:
            changes[name] = shipped
    return replace(config, **changes) if changes else config


def _spark_file(name: str) -> str | None:
    try:
        from pyspark import SparkFiles

        candidate = SparkFiles.get(name)
    except Exception:  # no Spark context here, or no files shipped
        return None
    return candidate if os.path.exists(candidate) else None


def _ip_cap(windows: Windows | None) -> int:
    return windows.max_accounts_per_ip if windows is not None else 0


def _check_batches(config: CheckerConfig, cap: int, batches: Iterator[Any]) -> Iterator[Any]:
    """``cap``: accounts kept per address, as the memory store keeps them."""
    worker = _worker(config)
    history = worker.history
    history.reset()
    checker = worker.checker
    for batch in batches:
        columns = batch.to_pydict()
        none = [None] * batch.num_rows  # no history check enabled: no views computed
        link_views = columns.get("_link_views", none)
        device_views = columns.get("_device_view", none)
        rows = []
        for i in range(batch.num_rows):
            history.on_ip = _newest_per_account(columns["_on_ip"][i], cap)
            history.on_block = _newest_per_account(columns["_on_block"][i], cap)
            file, line = columns["file"][i], columns["line"][i]
            item = _decode(columns["record"][i], file or "", line or 0)
            if isinstance(item, Reject):  # cannot happen: stage 1 decoded it
                raise RuntimeError(f"row {columns['row_id'][i]}: {item.error}")
            worker.history.hand(link_views[i], device_views[i])
            try:
                report = checker.check(item.record, session_id=columns["sid"][i])
            except InvalidSessionError as exc:  # cannot happen: stage 1 validated it
                raise RuntimeError(f"row {columns['row_id'][i]}: {exc}") from None
            row = _report_row(report)
            row.update(row_id=columns["row_id"][i], file=file, line=line)
            rows.append(row)
        yield pa.RecordBatch.from_pylist(rows, schema=_REPORT_ARROW)


# --- report format v1 as typed rows -------------------------------------------------


def _report_row(report: Report) -> dict[str, Any]:
    """A report as a row of :data:`REPORT_SCHEMA`: the record's own JSON form
    (:meth:`Report.to_dict`) with ``ts`` a timestamp, maps as pairs and the parts of
    no fixed shape (evidence, features, points_scaled) as JSON text."""
    out = report.to_dict()
    device_id = report.features.get("device_id")
    findings = [{**f, "evidence_json": _json_or_none(f["evidence"])} for f in out["findings"]]
    return {
        **out,
        "ts": report.ts,
        "findings": findings,
        "contributions": list(out["contributions"].items()),
        "not_evaluated_reasons": list(out["not_evaluated_reasons"].items()),
        "features_json": _json_or_none(out["features"]),
        "warnings": out.get("warnings", []),
        "device_id": device_id if isinstance(device_id, str) and device_id else None,
        "points_scaled_json": _json_or_none(report.points_scaled),
    }


def _json_or_none(value: dict[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def report_from_row(row: dict[str, Any]) -> Report:
    """A reports row (``Row.asDict(recursive=True)`` or Arrow ``to_pylist``) as a
    :class:`~fingerprint.report.Report` (:meth:`Report.from_dict` of the row's JSON
    form); ``.to_dict()`` is then the CLI's JSON."""
    scaled = row.get("points_scaled_json")
    return Report.from_dict(
        {
            **row,
            "findings": [
                {**f, "evidence": orjson.loads(f["evidence_json"])} for f in row["findings"]
            ],
            "contributions": _pairs(row["contributions"]),
            "not_evaluated_reasons": _pairs(row["not_evaluated_reasons"]),
            "features": orjson.loads(row["features_json"]),
            "points_scaled": orjson.loads(scaled) if scaled else None,
        }
    )


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    return list(value.items()) if isinstance(value, dict) else list(value or ())


def to_json_lines(reports: DataFrame) -> DataFrame:
    """Reports as a ``value`` column of report-format-v1 JSON, byte for byte the
    CLI's lines (``.write.text(path)`` writes them)."""
    schema = T.StructType([T.StructField("value", T.StringType())])
    return reports.select(*_REPORT_COLUMNS).mapInArrow(_json_batches, schema)


def _json_batches(batches: Iterator[Any]) -> Iterator[Any]:
    out_schema = pa.schema([("value", pa.string())])
    for batch in batches:
        lines = [
            jsonl_line(report_from_row(row).to_dict())[:-1].decode() for row in batch.to_pylist()
        ]
        yield pa.RecordBatch.from_arrays([pa.array(lines, pa.string())], schema=out_schema)


# --- python -m fingerprint.spark ------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fingerprint.spark",
        description="Grade session logs on Spark (spark-submit or local); see docs/SPARK.md.",
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="session log files (JSON Lines, not CSV)"
    )
    parser.add_argument("output", metavar="OUTPUT", help="output directory")
    parser.add_argument(
        "--format",
        choices=("json", "parquet"),
        default="json",
        help="json: the CLI's report lines; parquet: the typed schema (default json)",
    )
    parser.add_argument("--rejects", metavar="PATH", help="write rejected lines here")
    parser.add_argument("--partitions", type=int, help="account partitions")
    parser.add_argument(
        "--ordered", action="store_true", help="write in input order (a global sort)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output")
    add_checker_options(parser, SPARK)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # The identity secret comes from the CLI's file option or environment variable:
        # executors get the config, not the variable.
        config = config_from_args(args, SPARK)
        paths = [p for spec in args.inputs for p in _input_paths(spec)]
        Checker(config)  # fail fast on configuration errors, before Spark starts work
    except ConfigError as exc:
        print(f"fingerprint: configuration error: {exc}", file=sys.stderr)
        return 2
    except FingerprintError as exc:
        print(f"fingerprint: {exc}", file=sys.stderr)
        return 1
    spark = SparkSession.builder.appName("fingerprint").getOrCreate()
    _ship_files(spark, config)
    reports, rejects = check_sessions(
        read_session_lines(spark, paths), config, partitions=args.partitions
    )
    if args.ordered:
        reports = reports.orderBy("row_id")
        rejects = rejects.orderBy("row_id")
    mode = "overwrite" if args.overwrite else "errorifexists"
    if args.format == "json":
        to_json_lines(reports).write.mode(mode).text(args.output)
    else:
        reports.write.mode(mode).parquet(args.output)
    if args.rejects:
        if args.format == "json":
            truncated = F.when(F.col("raw_truncated"), F.lit(True)).alias("raw_truncated")
            rejects.select("file", "line", "error", "raw", truncated).write.mode(mode).json(
                args.rejects
            )
        else:
            rejects.write.mode(mode).parquet(args.rejects)
    return 0


def _input_paths(spec: str) -> list[str]:
    """Local files, directories and globs expand as in the CLI; URIs pass through.
    The job reads JSON Lines: an input the CLI reads as CSV (by its name, or a local
    file by its header) stops it here (``ConfigError``), where it would make every
    row a reject."""
    if "://" in spec and not spec.startswith("file://"):
        paths, format_of = [spec], named_format
    else:
        paths, format_of = expand_inputs([spec]), local_format
    csv_inputs = [path for path in paths if format_of(path) == "csv"]
    if csv_inputs:
        raise ConfigError(
            "the Spark job reads JSON Lines; CSV is read by `fingerprint check`",
            ", ".join(csv_inputs),
        )
    return paths


def _ship_files(spark: SparkSession, config: CheckerConfig) -> None:
    """Local databases and rules go to the executors (found again by base name)."""
    context = spark.sparkContext
    for path in (config.city_db, config.asn_db, config.anonymous_ip_db):
        if path is not None and os.path.isfile(path):
            context.addFile(os.fspath(path))
    if config.rules_dir is not None and os.path.isdir(config.rules_dir):
        context.addFile(os.fspath(config.rules_dir), recursive=True)


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: Spark pickles the stage
    # functions by reference, and executors can only find them in fingerprint.spark.
    from fingerprint.spark import main as _main

    sys.exit(_main())
