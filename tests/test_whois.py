"""ipwhois enrichment, for real but offline: a local server plays ARIN and APNIC.

ipwhois builds its own URLs for the real registries (https://whois.arin.net/rest/...,
https://rdap.arin.net/registry/ip/..., https://rdap.apnic.net/ip/...). It sends them
through the opener it is given; ours sends every request, plain HTTP with the absolute
URI (as a client talks to a proxy), to a server on 127.0.0.1, which answers as the
registry named in the URI would. A guard fails any test that opens a socket anywhere
but the loopback address.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ipaddress
import json
import socket
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("ipwhois")

from fingerprint.errors import ConfigError
from fingerprint.rules import load_rules
from fingerprint.sources.whois import (
    PENDING,
    CircuitBreaker,
    Pending,
    WhoisCache,
    WhoisClient,
    WhoisEnricher,
    WhoisRecord,
    default_cache_path,
    is_hosting,
    open_enricher,
    record_from_rdap,
)

LOOPBACK = {"127.0.0.1", "::1"}


# --- no traffic leaves the machine ------------------------------------------------


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connect or datagram to a non-loopback address fails the test."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise AssertionError(f"test tried to reach {address!r}")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    def sendto(sock: socket.socket, data: bytes, *args: Any) -> int:
        check(sock, args[-1])
        return real_sendto(sock, data, *args)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)


# --- the fake registries ----------------------------------------------------------


@dataclass(frozen=True)
class Net:
    cidr: str
    name: str
    registry: str  # "arin" or "apnic": who holds the RDAP record
    country: str
    handle: str
    org_handle: str
    origin_asn: int | None = None  # ARIN's arin_originas0 extension

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)


ALIBABA = Net("47.92.0.0/14", "ALIBABA-CN-NET", "arin", "CN", "NET-47-92-0-0-1", "AL-3", 37963)
TENCENT = Net("119.28.0.0/16", "TENCENT-NET-AP", "apnic", "CN", "119.28.0.0 - 119.28.255.255", "")
CHINANET = Net("183.0.0.0/10", "CHINANET-GD", "apnic", "CN", "183.0.0.0 - 183.63.255.255", "")
ALIYUN_V6 = Net("2408:4000::/22", "ALIBABA-CN-NET", "apnic", "CN", "2408:4000::/22", "")
NETWORKS = (ALIBABA, TENCENT, CHINANET, ALIYUN_V6)

ARIN_REST = "https://whois.arin.net/rest/nets;q={ip}?showDetails=true&showARIN=true"
ARIN_RDAP = "https://rdap.arin.net/registry/ip/{ip}"
APNIC_RDAP = "https://rdap.apnic.net/ip/{ip}"


def _arin_rest(ip: str, net: Net | None) -> dict[str, Any]:
    """whois-RWS ``nets`` answer: the RIR's parent block, then ARIN's own net if any."""
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        parent_cidr = ipaddress.ip_network(f"{ip}/8", strict=False)
    else:
        parent_cidr = ipaddress.ip_network(f"{ip}/12", strict=False)
    rir = "ARIN" if net is not None and net.registry == "arin" else "APNIC"

    def one(cidr: Any, handle: str, name: str, org: str, org_name: str) -> dict[str, Any]:
        return {
            "handle": {"$": handle},
            "name": {"$": name},
            "orgRef": {
                "@handle": org,
                "@name": org_name,
                "$": f"https://whois.arin.net/rest/org/{org}",
            },
            "startAddress": {"$": str(cidr.network_address)},
            "endAddress": {"$": str(cidr.broadcast_address)},
            "netBlocks": {
                "netBlock": {
                    "cidrLength": {"$": str(cidr.prefixlen)},
                    "startAddress": {"$": str(cidr.network_address)},
                    "type": {"$": "DA" if org != rir else "RN"},
                }
            },
            "version": {"$": str(cidr.version)},
        }

    nets = [one(parent_cidr, f"NET-{rir}-PARENT", f"{rir}-BLOCK", rir, f"{rir} registry")]
    if net is not None and net.registry == "arin":
        child = one(net.network, net.handle, net.name, net.org_handle, "Alibaba.com LLC")
        child["originASes"] = {"originAS": [{"$": f"AS{net.origin_asn}"}]}
        nets.append(child)
    return {
        "nets": {
            "@copyrightNotice": "Copyright 1997-2026, American Registry for Internet Numbers",
            "@termsOfUse": "https://www.arin.net/resources/registry/whois/tou/",
            "net": nets if len(nets) > 1 else nets[0],
        }
    }


def _rdap(net: Net) -> dict[str, Any]:
    """An RFC 9083 ``ip network`` object, with the cidr0 and arin_originas0 extensions."""
    network = net.network
    v4 = network.version == 4
    answer: dict[str, Any] = {
        "rdapConformance": ["rdap_level_0", "cidr0", "nro_rdap_profile_0"],
        "objectClassName": "ip network",
        "handle": net.handle,
        "startAddress": str(network.network_address),
        "endAddress": str(network.broadcast_address),
        "ipVersion": "v4" if v4 else "v6",
        "name": net.name,
        "type": "ALLOCATED PORTABLE",
        "country": net.country,
        "status": ["active"],
        "cidr0_cidrs": [
            {
                "v4prefix" if v4 else "v6prefix": str(network.network_address),
                "length": network.prefixlen,
            }
        ],
        "entities": [
            {
                "objectClassName": "entity",
                "handle": f"ORG-{net.name}",
                "roles": ["registrant"],
                "vcardArray": [
                    "vcard",
                    [
                        ["version", {}, "text", "4.0"],
                        ["fn", {}, "text", f"{net.name} holder"],
                        ["kind", {}, "text", "org"],
                        ["adr", {"label": "Hangzhou, China"}, "text", ["", "", "", "", "", "", ""]],
                    ],
                ],
            }
        ],
        "events": [
            {"eventAction": "registration", "eventDate": "2016-04-22T09:12:44Z"},
            {"eventAction": "last changed", "eventDate": "2024-03-01T00:00:00Z"},
        ],
        "links": [
            {
                "value": f"https://rdap.{net.registry}.net/ip/{network.network_address}",
                "rel": "self",
                "href": f"https://rdap.{net.registry}.net/ip/{network}",
                "type": "application/rdap+json",
            }
        ],
        "notices": [
            {
                "title": "Terms and Conditions",
                "description": ["This is test data served from 127.0.0.1."],
            }
        ],
        "port43": f"whois.{net.registry}.net",
    }
    if net.origin_asn is not None:
        answer["rdapConformance"].append("arin_originas0")
        answer["arin_originas0_originautnums"] = [net.origin_asn]
    return answer


@dataclass
class Registry:
    """What the fake registries answer; every request is recorded."""

    port: int = 0
    mode: str = "ok"
    delay: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    dripped: int = 0  # bytes of a dripped body sent
    streamed: int = 0  # bytes of a huge body the client took

    def special(self, url: str) -> Callable[[BaseHTTPRequestHandler], None] | None:
        """Answers that are not one body: ARIN's RDAP dripping, huge or redirecting."""
        parts = urlsplit(url)
        if parts.hostname != "rdap.arin.net" or not parts.path.startswith("/registry/ip/"):
            return None
        ip = parts.path.rsplit("/", 1)[1]
        if self.mode == "redirect_foreign":
            return functools.partial(_redirect, f"https://rdap.attacker.example/ip/{ip}")
        if self.mode == "redirect_apnic":
            return functools.partial(_redirect, APNIC_RDAP.format(ip=ip))
        if self.mode == "drip":
            return self._drip
        if self.mode in ("huge", "huge_undeclared"):
            return self._huge
        return None

    def _drip(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rdap+json")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        for _ in range(100_000):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            self.dripped += 1
            if self.release.wait(0.02):
                return

    def _huge(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rdap+json")
        if self.mode == "huge":
            handler.send_header("Content-Length", str(300 * 1024 * 1024))
        handler.end_headers()
        handler.close_connection = True
        chunk = b'{"x": "' + b"a" * (64 * 1024 - 7)
        for _ in range(300 * 16):
            if self.release.is_set():
                return
            handler.wfile.write(chunk)
            self.streamed += len(chunk)

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def answer(self, url: str) -> tuple[int, str, bytes]:
        parts = urlsplit(url)
        host, path = parts.hostname or "", parts.path
        if self.delay:
            self.release.wait(self.delay)
        if self.mode == "http_500":
            return 500, "text/plain", b"internal error"
        if host == "whois.arin.net" and path.startswith("/rest/nets;q="):
            ip = path.split(";q=", 1)[1]
            if self.mode == "asn_missing_org":
                return 200, "application/json", b'{"nets": {"net": {"handle": {"$": "X"}}}}'
            return 200, "application/json", json.dumps(_arin_rest(ip, _find(ip))).encode()
        rdap_prefix = {"rdap.arin.net": "/registry/ip/", "rdap.apnic.net": "/ip/"}.get(host)
        if rdap_prefix and path.startswith(rdap_prefix):
            net = _find(path[len(rdap_prefix) :])
            if net is None:
                return 404, "application/rdap+json", b'{"errorCode": 404, "title": "Not Found"}'
            body = _rdap(net)
            if self.mode == "invalid_json":
                return 200, "application/rdap+json", b'{"objectClassName": "ip network", "handle'
            if self.mode == "rdap_not_object":
                return 200, "application/rdap+json", b'["ip network"]'
            if self.mode == "rdap_missing_range":
                del body["startAddress"], body["endAddress"]
            if self.mode == "rdap_missing_names":
                del body["name"], body["country"]
                body.pop("arin_originas0_originautnums", None)
            if self.mode == "rdap_wrong_network":
                body["startAddress"], body["endAddress"] = "8.8.8.0", "8.8.8.255"
            if self.mode == "rdap_whole_slash8":
                body["startAddress"], body["endAddress"] = "47.0.0.0", "47.255.255.255"
            return 200, "application/rdap+json", json.dumps(body).encode()
        return 404, "text/plain", b"unknown registry"


def _redirect(location: str, handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(302)
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def _find(ip: str) -> Net | None:
    address = ipaddress.ip_address(ip)
    return next((n for n in NETWORKS if address in n.network), None)


@pytest.fixture
def registry() -> Iterator[Registry]:
    state = Registry()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests.append(self.path)
            special = state.special(self.path)
            if special is not None:
                with contextlib.suppress(OSError):  # the client gave up (deadline, cap)
                    special(self)
                return
            status, content_type, body = state.answer(self.path)
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (timeout)
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


class LocalRegistryHandler(urllib.request.AbstractHTTPHandler):
    """Sends http and https requests, absolute URI in the request line, to 127.0.0.1:port.

    A ``ProxyHandler`` would tunnel https through CONNECT and then speak TLS to the
    registry's name, which a local server cannot answer; this is what a plain-HTTP
    proxy sees instead.
    """

    handler_order = 100

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def _connection(self, host: str, **kwargs: Any) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, **kwargs)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        req.selector = req.full_url  # absolute URI, as sent to a proxy
        return self.do_open(self._connection, req)

    https_open = http_open
    http_request = urllib.request.AbstractHTTPHandler.do_request_
    https_request = urllib.request.AbstractHTTPHandler.do_request_


def local_opener(port: int) -> urllib.request.OpenerDirector:
    """An opener with no route but 127.0.0.1 (no ProxyHandler, no environment proxies)."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        LocalRegistryHandler(port),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tick() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def make_client(
    registry: Registry, tmp_path: Path, wall: FakeClock, tick: FakeClock
) -> Iterator[Callable[..., WhoisClient]]:
    caches: list[WhoisCache] = []

    def make(
        *,
        timeout: float = 2.0,
        threshold: int = 5,
        cache: WhoisCache | None = None,
        **kwargs: Any,
    ) -> WhoisClient:
        if cache is None:
            cache = WhoisCache(tmp_path / "whois.sqlite3", clock=wall)
        caches.append(cache)
        return WhoisClient(
            cache,
            timeout=timeout,
            breaker=CircuitBreaker(threshold, 60.0, clock=tick),
            asn_methods=["http"],
            opener=local_opener(registry.port),
            clock=wall,
            **kwargs,
        )

    yield make
    for cache in caches:
        cache.close()


@pytest.fixture(scope="module")
def network_rules() -> Any:
    return load_rules().network


def state(breaker: CircuitBreaker) -> str:
    return breaker.state


def arin_urls(ip: str) -> list[str]:
    return [ARIN_REST.format(ip=ip), ARIN_RDAP.format(ip=ip)]


# --- lookups ----------------------------------------------------------------------


def test_alibaba_answer_becomes_a_hosting_record(
    make_client: Callable[..., WhoisClient], registry: Registry, network_rules: Any
) -> None:
    client = make_client()
    resolution = client.resolve("47.92.10.20")
    assert resolution.outcome == "fetched"
    record = resolution.record
    assert record == WhoisRecord(
        asn=37963,
        asn_description=None,  # the http ASN method names the registry only
        network_name="ALIBABA-CN-NET",
        cidr="47.92.0.0/14",
        country="CN",
        source="rdap",
        fetched_at=1_800_000_000.0,
        from_cache=False,
        start_address="47.92.0.0",
        end_address="47.95.255.255",
    )
    # Exactly what ipwhois asks: ARIN's REST API for the registry, then its RDAP.
    assert registry.requests == arin_urls("47.92.10.20")
    hosting = is_hosting(record, network_rules)
    assert hosting is not None
    assert hosting[1] == "cloud" and "Alibaba" in hosting[0]


def test_one_answer_serves_the_whole_network(
    make_client: Callable[..., WhoisClient], registry: Registry, tmp_path: Path, wall: FakeClock
) -> None:
    client = make_client()
    assert client.resolve("47.92.10.20").outcome == "fetched"
    assert registry.count() == 2
    again = client.resolve("47.95.255.1")  # same /14, other end
    assert again.outcome == "cache"
    assert again.record is not None and again.record.from_cache
    assert again.record.network_name == "ALIBABA-CN-NET"
    assert registry.count() == 2
    # The cache is a file: a new process (here: a new cache object) finds it.
    reopened = make_client(cache=WhoisCache(tmp_path / "whois.sqlite3", clock=wall))
    assert reopened.resolve("47.93.0.7").outcome == "cache"
    # Outside the network: asked again.
    assert reopened.resolve("47.96.0.1").outcome == "failed"  # 404 from RDAP
    assert registry.count() == 4


def test_apnic_network_matches_by_name(
    make_client: Callable[..., WhoisClient], registry: Registry, network_rules: Any
) -> None:
    client = make_client()
    record = client.lookup("119.28.5.6")
    assert record is not None
    assert (record.asn, record.network_name, record.cidr) == (
        None,
        "TENCENT-NET-AP",
        "119.28.0.0/16",
    )
    assert registry.requests == [
        ARIN_REST.format(ip="119.28.5.6"),
        APNIC_RDAP.format(ip="119.28.5.6"),
    ]
    assert is_hosting(record, network_rules) == ("TENCENT[- ]?CLOUD|TENCENT-NET|QCLOUD", "pattern")
    residential = client.lookup("183.6.1.2")
    assert residential is not None and residential.network_name == "CHINANET-GD"
    assert is_hosting(residential, network_rules) is None


def test_ipv6(make_client: Callable[..., WhoisClient], registry: Registry) -> None:
    client = make_client()
    record = client.lookup("2408:4001:f10::1")
    assert record is not None
    assert (record.cidr, record.network_name) == ("2408:4000::/22", "ALIBABA-CN-NET")
    assert client.resolve("2408:43ff:ffff::9").outcome == "cache"
    assert client.resolve("2408:4400::1").outcome == "failed"
    assert registry.count() == 4


def test_private_addresses_are_never_looked_up(
    make_client: Callable[..., WhoisClient], registry: Registry
) -> None:
    client = make_client()
    for ip in ("10.1.2.3", "192.168.1.1", "100.64.0.1", "127.0.0.1", "fe80::1"):
        assert client.resolve(ip).outcome == "not_public"
    assert client.resolve("not an ip").outcome == "invalid"
    # Global to Python, "defined" to ipwhois (6to4 relay anycast): refused before any
    # request, and the breaker does not count it.
    client.breaker.record_failure()
    for _ in range(6):
        assert client.resolve("192.88.99.1").outcome == "not_public"
    assert state(client.breaker) == "closed"
    assert registry.count() == 0


def test_expiry(
    make_client: Callable[..., WhoisClient], registry: Registry, wall: FakeClock
) -> None:
    client = make_client()
    assert client.resolve("47.92.10.20").outcome == "fetched"
    wall.now += 7 * 24 * 3600 - 1
    assert client.resolve("47.92.10.20").outcome == "cache"
    wall.now += 2
    assert client.resolve("47.92.10.20").outcome == "fetched"
    assert registry.count() == 4
    # ttl 0: never served from the cache.
    instant = make_client(success_ttl=0)
    assert instant.resolve("119.28.0.1").outcome == "fetched"
    assert instant.resolve("119.28.0.1").outcome == "fetched"
    assert registry.count() == 8
    assert client.cache is not None
    wall.now += 7 * 24 * 3600 + 1
    assert client.cache.purge_expired() == 2  # the Alibaba and the Tencent network
    assert len(client.cache) == 0


def test_timeout_is_a_remembered_failure(
    make_client: Callable[..., WhoisClient], registry: Registry, wall: FakeClock
) -> None:
    registry.delay = 5.0  # until released
    client = make_client(timeout=0.2)
    started = time.monotonic()
    assert client.resolve("47.92.10.20").outcome == "failed"
    assert time.monotonic() - started < 1.5
    assert registry.count() == 1  # ipwhois did not retry (retry_count=0)
    assert client.cache is not None
    reason = client.cache.failure("47.92.10.20")
    assert reason is not None and reason.startswith("timeout: ")
    # Remembered for the /24, for 15 minutes.
    assert client.resolve("47.92.10.99").outcome == "negative"
    assert client.resolve("47.92.11.1").outcome == "failed"
    registry.release.set()
    registry.delay = 0.0
    wall.now += 15 * 60 + 1
    assert client.resolve("47.92.10.20").outcome == "fetched"


def test_total_deadline_covers_both_requests(
    make_client: Callable[..., WhoisClient], registry: Registry
) -> None:
    # Each request alone is under the timeout, together they are not.
    registry.delay = 0.3
    client = make_client(timeout=0.5)
    started = time.monotonic()
    assert client.resolve("47.92.10.20").outcome == "failed"
    assert time.monotonic() - started < 0.9
    registry.release.set()


@pytest.mark.parametrize(
    "mode",
    [
        "invalid_json",
        "rdap_not_object",
        "rdap_missing_range",
        "rdap_missing_names",
        "rdap_wrong_network",
        "asn_missing_org",
        "http_500",
    ],
)
def test_malformed_answers_fail_cleanly(
    make_client: Callable[..., WhoisClient], registry: Registry, mode: str
) -> None:
    registry.mode = mode
    client = make_client()
    assert client.resolve("47.92.10.20")[:2] == (None, "failed")
    assert client.cache is not None
    assert client.cache.get("47.92.10.20") is None
    assert client.cache.failure("47.92.10.20") is not None
    before = registry.count()
    assert client.resolve("47.92.10.20").outcome == "negative"
    assert registry.count() == before


def test_breaker_stops_traffic_until_the_cool_down(
    make_client: Callable[..., WhoisClient], registry: Registry, tick: FakeClock
) -> None:
    registry.mode = "http_500"
    client = make_client(threshold=3)
    for i in range(3):  # different /24s: the negative cache does not answer
        assert client.resolve(f"47.92.{i}.1").outcome == "failed"
    assert registry.count() == 3  # the ASN request fails, RDAP is not asked
    assert client.breaker.state == "open"
    for i in range(3, 10):
        assert client.resolve(f"47.92.{i}.1").outcome == "breaker_open"
    assert registry.count() == 3
    tick.now += 59
    assert client.resolve("47.92.20.1").outcome == "breaker_open"
    tick.now += 2
    assert state(client.breaker) == "half_open"
    # The probe fails: open again for a full cool-down.
    assert client.resolve("47.92.21.1").outcome == "failed"
    assert registry.count() == 4
    assert client.resolve("47.92.22.1").outcome == "breaker_open"
    tick.now += 61
    registry.mode = "ok"
    assert client.resolve("47.92.23.1").outcome == "fetched"
    assert state(client.breaker) == "closed"
    assert client.resolve("119.28.0.1").outcome == "fetched"


def test_half_open_breaker_lets_one_probe_through() -> None:
    clock = FakeClock(0.0)
    breaker = CircuitBreaker(2, 10.0, clock=clock)
    breaker.record_failure()
    assert state(breaker) == "closed" and breaker.allow()
    breaker.record_failure()
    assert not breaker.allow()
    clock.now = 10.0
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(breaker.allow())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert breaker.state == "open"  # while the probe is out
    breaker.record_success()
    assert state(breaker) == "closed" and breaker.allow()


# --- the non-blocking front -------------------------------------------------------


def test_enricher_returns_pending_at_once_while_the_registry_is_slow(
    make_client: Callable[..., WhoisClient], registry: Registry
) -> None:
    registry.delay = 10.0  # until released
    enricher = WhoisEnricher(make_client(timeout=5.0), max_workers=2)
    try:
        started = time.monotonic()
        first = enricher.lookup("47.92.10.20", wait=0)
        second = enricher.lookup("47.92.10.20", wait=0.05)
        elapsed = time.monotonic() - started
        assert first is PENDING and isinstance(second, Pending) and not first
        assert elapsed < 0.5
        stats = enricher.stats()
        assert (stats.misses, stats.pending) == (1, 1)  # one lookup for both calls
        registry.release.set()
        record = enricher.lookup("47.92.10.20", wait=5.0)
        assert isinstance(record, WhoisRecord) and record.asn == 37963
        assert registry.count() == 2
        cached = enricher.lookup("47.93.1.1", wait=0)
        assert isinstance(cached, WhoisRecord) and cached.from_cache
        stats = enricher.stats()
        assert (stats.hits, stats.fetched, stats.failures) == (1, 1, 0)
        assert stats.breaker_state == "closed"
    finally:
        enricher.close()


def test_enricher_budget_and_failures(
    make_client: Callable[..., WhoisClient], registry: Registry
) -> None:
    enricher = WhoisEnricher(make_client(), max_lookups=2)
    try:
        assert isinstance(enricher.lookup("47.92.0.1", wait=5.0), WhoisRecord)
        assert enricher.lookup("47.96.0.1", wait=5.0) is None  # 404: failed
        assert enricher.lookup("47.96.0.2", wait=0) is None  # negative cache
        assert enricher.lookup("119.28.0.1", wait=5.0) is None  # budget spent
        assert isinstance(enricher.lookup("47.94.0.1", wait=0), WhoisRecord)  # cache still
        assert enricher.lookup("10.0.0.1") is None
        assert enricher.lookup("garbage") is None
        stats = enricher.stats().as_dict()
        assert stats["misses"] == 2 and stats["skipped_budget"] == 1
        assert stats["failures"] == 1 and stats["negative_hits"] == 1 and stats["hits"] == 1
        assert registry.count() == 4
    finally:
        enricher.close()
    assert enricher.lookup("119.28.0.2", wait=1.0) is None  # closed: nothing submitted
    assert registry.count() == 4


def test_enricher_stops_submitting_when_the_breaker_is_open(
    make_client: Callable[..., WhoisClient], registry: Registry
) -> None:
    registry.mode = "http_500"
    enricher = WhoisEnricher(make_client(threshold=2))
    try:
        for ip in ("47.92.0.1", "47.92.1.1"):
            assert enricher.lookup(ip, wait=5.0) is None
        assert enricher.lookup("47.92.2.1", wait=5.0) is None
        stats = enricher.stats()
        assert (stats.misses, stats.failures, stats.skipped_breaker) == (2, 2, 1)
        assert stats.breaker_state == "open"
        assert registry.count() == 2
    finally:
        enricher.close()


# --- the cache alone --------------------------------------------------------------


def _record(cidr: str, name: str) -> WhoisRecord:
    network = ipaddress.ip_network(cidr)
    return WhoisRecord(
        asn=64500,
        asn_description=None,
        network_name=name,
        cidr=cidr,
        country="CN",
        fetched_at=1.0,
        start_address=str(network.network_address),
        end_address=str(network.broadcast_address),
    )


def test_cache_prefers_the_most_specific_network(tmp_path: Path, wall: FakeClock) -> None:
    cache = WhoisCache(tmp_path / "c.sqlite3", clock=wall)
    assert cache.put(_record("47.92.0.0/14", "BIG"))
    assert cache.put(_record("47.92.8.0/22", "SMALL"))
    assert cache.put(_record("2408:4000::/22", "V6"))
    assert cache.get("47.92.9.1").network_name == "SMALL"  # type: ignore[union-attr]
    assert cache.get("47.93.9.1").network_name == "BIG"  # type: ignore[union-attr]
    assert cache.get("47.96.0.0") is None
    assert cache.get("2408:4000::1").network_name == "V6"  # type: ignore[union-attr]
    assert cache.get("::ffff:47.92.9.1").network_name == "SMALL"  # type: ignore[union-attr]
    assert cache.get("2409::1") is None
    # Too wide to trust for every address: kept for the /24 around the query only.
    assert not cache.put(_record("0.0.0.0/0", "ALL"))
    assert cache.put(_record("0.0.0.0/0", "ALL"), around="8.8.8.8")
    assert cache.get("8.8.8.200").network_name == "ALL"  # type: ignore[union-attr]
    assert cache.get("8.8.9.1") is None
    cache.put_failure("1.2.3.4", ttl=10, reason="boom")
    assert cache.failure("1.2.3.200") == "boom" and cache.failure("1.2.4.1") is None
    wall.now += 11
    assert cache.failure("1.2.3.4") is None
    assert cache.purge_expired() == 1
    cache.close()
    assert cache.get("47.92.9.1") is None  # closed: a miss, not an error


def test_cache_location_and_bad_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "fingerprint" / "whois.sqlite3"
    cache = WhoisCache()
    assert Path(cache.path).is_file()
    cache.close()
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_path() == Path.home() / ".cache" / "fingerprint" / "whois.sqlite3"
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="whois cache"):
        WhoisCache(junk)
    with pytest.raises(ConfigError):
        WhoisCache(junk / "below-a-file.sqlite3")
    # A damaged row reads as a miss.
    cache = WhoisCache(tmp_path / "ok.sqlite3")
    cache.put(_record("47.92.0.0/14", "X"))
    cache.close()
    with sqlite3.connect(tmp_path / "ok.sqlite3") as conn:
        conn.execute("UPDATE networks SET record = '{not json'")
    cache = WhoisCache(tmp_path / "ok.sqlite3")
    assert cache.get("47.92.0.1") is None
    cache.close()


def test_cache_is_safe_across_threads(tmp_path: Path) -> None:
    cache = WhoisCache(tmp_path / "t.sqlite3")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                cache.put(_record(f"10.{n}.{i}.0/24", f"N{n}-{i}"))
                record = cache.get(f"10.{n}.{i}.7")
                assert record is not None and record.network_name == f"N{n}-{i}"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(cache) == 400
    cache.close()


def test_is_hosting_without_a_record(network_rules: Any) -> None:
    assert is_hosting(None, network_rules) is None
    bare = WhoisRecord(None, "AMAZON-02", None, None, None)
    assert is_hosting(bare, network_rules) == (
        r"AMAZON|\bAWS\b|AMAZON[- ]?DATA[- ]?SERVICES",
        "pattern",
    )


def _child_lookup(enricher: WhoisEnricher, ip: str, out: Any) -> None:
    record = enricher.lookup(ip, wait=5.0)
    out.send(
        (type(record).__name__, getattr(record, "network_name", None), enricher.stats().misses)
    )


def test_enricher_survives_a_fork(
    make_client: Callable[..., WhoisClient], registry: Registry
) -> None:
    """The batch runner forks its workers: each child gets fresh threads and connection."""
    import multiprocessing

    enricher = WhoisEnricher(make_client())
    try:
        assert isinstance(enricher.lookup("47.92.0.1", wait=5.0), WhoisRecord)
        context = multiprocessing.get_context("fork")
        parent_end, child_end = context.Pipe()
        child = context.Process(target=_child_lookup, args=(enricher, "119.28.0.1", child_end))
        child.start()
        assert parent_end.poll(10)
        assert parent_end.recv() == ("WhoisRecord", "TENCENT-NET-AP", 1)
        child.join(10)
        assert child.exitcode == 0
        # The child's answer went to the shared file; the parent reads it.
        cached = enricher.lookup("119.28.9.9", wait=0)
        assert isinstance(cached, WhoisRecord) and cached.from_cache
    finally:
        enricher.close()


def test_the_guard_blocks_other_addresses() -> None:
    with pytest.raises(AssertionError, match="tried to reach"):
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)


def test_open_enricher(registry: Registry, tmp_path: Path) -> None:
    enricher = open_enricher(
        tmp_path / "w.sqlite3",
        timeout=2.0,
        max_lookups=5,
        opener=local_opener(registry.port),
        asn_methods=["http"],
    )
    with enricher:
        record = enricher.lookup("47.92.0.1", wait=5.0)
        assert isinstance(record, WhoisRecord) and record.asn == 37963
    assert (tmp_path / "w.sqlite3").is_file()


# --- bounded lookups (issue 19.7) ---------------------------------------------------


@pytest.fixture
def streaming(registry: Registry) -> Iterator[Registry]:
    """The registry, told to stream its RDAP bodies (see Registry.stream)."""
    yield registry
    registry.release.set()


def test_a_dripping_body_ends_at_the_deadline(
    make_client: Callable[..., WhoisClient], registry: Registry
) -> None:
    registry.mode = "drip"  # one byte every 20 ms of a 100 kB body
    client = make_client(timeout=0.5)
    resolution = client.resolve("47.92.10.20")
    assert (resolution.record, resolution.outcome, resolution.failure) == (
        None,
        "failed",
        "timeout",
    )
    assert resolution.reason is not None and resolution.reason.startswith("timeout: ")
    assert registry.dripped > 0  # the body had started: the deadline cut the body itself
    assert client.cache is not None and "timeout" in (client.cache.failure("47.92.10.20") or "")


@pytest.mark.parametrize("declared", [True, False])
def test_a_huge_body_is_refused_unread(
    make_client: Callable[..., WhoisClient], registry: Registry, declared: bool
) -> None:
    registry.mode = "huge" if declared else "huge_undeclared"  # 300 MB of JSON
    client = make_client(max_bytes=64 * 1024)
    resolution = client.resolve("47.92.10.20")
    assert (resolution.outcome, resolution.failure) == ("failed", "too_large")
    # At most the cap and one chunk were taken off the socket, not 300 MB.
    assert registry.streamed <= 64 * 1024 + 128 * 1024 + 4 * 1024 * 1024


def test_redirects_to_a_foreign_host_are_not_followed(
    make_client: Callable[..., WhoisClient], registry: Registry
) -> None:
    registry.mode = "redirect_foreign"
    client = make_client()
    resolution = client.resolve("47.92.10.20")
    assert (resolution.outcome, resolution.failure) == ("failed", "redirect_refused")
    assert resolution.reason is not None and "rdap.attacker.example" in resolution.reason
    assert not any("attacker" in url for url in registry.requests)  # never asked
    assert client.cache is not None and client.cache.get("47.92.10.20") is None


def test_registry_referrals_are_followed(
    make_client: Callable[..., WhoisClient], registry: Registry
) -> None:
    registry.mode = "redirect_apnic"  # ARIN: "ask APNIC", as for a transferred block
    client = make_client()
    resolution = client.resolve("47.92.10.20")
    assert resolution.outcome == "fetched"
    assert resolution.record is not None and resolution.record.network_name == "ALIBABA-CN-NET"
    assert registry.requests[-1] == APNIC_RDAP.format(ip="47.92.10.20")


def test_an_opener_that_follows_redirects_itself_is_refused(registry: Registry) -> None:
    opener = local_opener(registry.port)
    opener.add_handler(urllib.request.HTTPRedirectHandler())
    with pytest.raises(ConfigError, match="redirect"):
        WhoisClient(None, opener=opener)


def test_an_over_wide_answer_is_cached_for_the_queried_block_only(
    make_client: Callable[..., WhoisClient], registry: Registry, network_rules: Any
) -> None:
    registry.mode = "rdap_whole_slash8"  # the answer claims 47.0.0.0/8 is Alibaba's
    client = make_client()
    first = client.resolve("47.92.10.20")
    assert first.outcome == "fetched" and is_hosting(first.record, network_rules) is not None
    assert client.resolve("47.92.10.99").outcome == "cache"  # same /24
    before = registry.count()
    assert client.resolve("47.1.2.3").outcome != "cache"  # elsewhere in the /8: asked
    assert registry.count() > before


def test_the_cached_range_is_what_the_answer_supports() -> None:
    """An ASN from a routing lookup holds for its announced prefix, not the whole net."""
    address = ipaddress.ip_address("47.92.10.20")
    result = {
        "asn": "37963",
        "asn_cidr": "47.92.0.0/20",
        "asn_description": "ALIBABA-CN-NET Hangzhou Alibaba Advertising Co.,Ltd., CN",
        "network": {
            "cidr": "47.92.0.0/14",
            "name": "ALIBABA-CN-NET",
            "start_address": "47.92.0.0",
            "end_address": "47.95.255.255",
        },
    }
    record = record_from_rdap(result, address, 1.0)
    assert (record.start_address, record.end_address, record.cidr) == (
        "47.92.0.0",
        "47.92.15.255",
        "47.92.0.0/20",
    )


def test_why_a_lookup_gave_no_answer(
    make_client: Callable[..., WhoisClient], registry: Registry
) -> None:
    client = make_client()
    assert client.resolve("not an ip")[1:] == ("invalid", None, "not an IP address")
    private = client.resolve("10.1.2.3")
    assert private.outcome == "not_public" and "not a public address" in (private.reason or "")
    registry.mode = "http_500"
    failed = client.resolve("47.92.10.20")
    assert failed.failure == "http_error" and "500" in (failed.reason or "")
    again = client.resolve("47.92.10.20")
    assert again.outcome == "negative"
    assert again.reason is not None and again.reason.startswith("from cache: ")


def test_fingerprint_whois_prints_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fingerprint.cli import main

    cache = str(tmp_path / "c.sqlite3")
    assert main(["whois", "not-an-ip", "192.168.1.1", "--whois-cache", cache]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "not-an-ip\tno answer: not an IP address",
        "192.168.1.1\tno answer: not a public address (private, shared, reserved or "
        "multicast): never looked up",
    ]
