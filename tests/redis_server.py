"""A real redis-server on a free loopback port, for tests (Debian's redis-server)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def require_redis_server() -> str:
    """The redis-server binary; skip (or fail on CI, which must run these) without it."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server not installed (apt-get install redis-server; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("redis", reason="the redis package is missing: pip install -e '.[dev]'")
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="fp-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait for its PONG; one that does not answer is
        stopped and its folder removed before the error (or skip) is raised."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def _skip_or_fail(message: str) -> None:
    if os.environ.get("CI"):  # CI installs a TLS-enabled redis-server: it must run
        pytest.fail(message)
    pytest.skip(message)


def make_certificates(folder: Path, *, server_names: str) -> dict[str, Path]:
    """A throwaway CA and a server certificate it signed (``server_names``: the
    subjectAltName, e.g. ``DNS:localhost``), as PEM files in ``folder``."""
    if shutil.which("openssl") is None:
        _skip_or_fail("openssl not installed: cannot make test certificates")
    files = {name: folder / f"{name}.pem" for name in ("ca", "ca_key", "cert", "key", "csr")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    san = str(folder / "san.cnf")
    Path(san).write_text(f"subjectAltName={server_names}\n", encoding="ascii")
    ca_key, ca, key, csr, cert = (str(files[n]) for n in ("ca_key", "ca", "key", "csr", "cert"))
    days = ("-days", "1")
    signed_by_ca = ("-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-extfile", san)
    for command in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, *days, "-subj", "/CN=test CA"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=redis"],
        ["x509", "-req", "-in", csr, *signed_by_ca, "-out", cert, *days],
    ):
        subprocess.run(["openssl", *command], check=True, capture_output=True)
    return files


class TLSRedisServer(RedisServer):
    """redis-server speaking only TLS on a free loopback port (no client certificates)."""

    def __init__(self, binary: str, certificates: dict[str, Path]) -> None:
        super().__init__(binary)
        self.certificates = certificates
        self.url = f"rediss://localhost:{self.port}/0?ssl_ca_certs={certificates['ca']}"

    def _tls_options(self) -> list[str]:
        files = {name: str(path) for name, path in self.certificates.items()}
        return [
            *("--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", files["cert"], "--tls-key-file", files["key"]),
            *("--tls-ca-cert-file", files["ca"], "--tls-auth-clients", "no"),
            *("--save", "", "--appendonly", "no", "--dir", self._dir, "--protected-mode", "no"),
        ]

    def _start(self) -> None:
        self._process = subprocess.Popen(
            [self.binary, *self._tls_options()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        context = ssl.create_default_context(cafile=str(self.certificates["ca"]))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:  # e.g. built without TLS
                assert self._process.stderr is not None
                said = self._process.stderr.read().decode(errors="replace").strip()
                self._process = None
                _skip_or_fail(f"redis-server has no TLS support ({said[-200:]})")
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw,
                    context.wrap_socket(raw, server_hostname="localhost") as conn,
                ):
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server (TLS) did not start")
