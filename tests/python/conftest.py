"""Shared helpers for the real-client tests: locate the binary, start it over stdio or
Streamable HTTP on a free loopback port, collect notifications, show server logs on failure.

Run: PATH=$PWD/.deps/bin:$PATH pytest tests/python   (CHM_BIN overrides the binary)
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import anyio
import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "tests" / "conformance" / "catalogue.yaml"  # Mode `conformance` + fixtures
PROMPTS = REPO / "tools.d" / "prompts" / "original.yaml"  # shipped prompts (investigate-pods, ...)
CAPACITY = Path(__file__).resolve().parent / "specs" / "capacity.yaml"  # backend-free tool
MODE = "conformance"

# Every test wraps its body in deadline(): anyio.fail_after(TEST_TIMEOUT).
TEST_TIMEOUT = 15


@contextmanager
def deadline(seconds: float = TEST_TIMEOUT) -> Iterator[None]:
    """fail_after(seconds), and unwrap the ExceptionGroups that the SDK's task groups put
    around a failing assertion so the report shows the assertion itself."""
    try:
        with anyio.fail_after(seconds):
            yield
    except BaseExceptionGroup as eg:
        leaves = list(_leaves(eg))
        real = [e for e in leaves if not isinstance(e, (anyio.get_cancelled_exc_class(), GeneratorExit))]
        if len(real) == 1:
            raise real[0] from None
        raise


def _leaves(eg: BaseExceptionGroup) -> Iterator[BaseException]:
    for e in eg.exceptions:
        if isinstance(e, BaseExceptionGroup):
            yield from _leaves(e)
        else:
            yield e


def static_spec_args() -> list[str]:
    """--specs/--mode for the fixture catalogue + capacity-math + the shipped prompts."""
    args: list[str] = ["--replace-catalogue"]
    for p in (CATALOGUE, CAPACITY, PROMPTS):
        args += ["--specs", str(p)]
    return args + ["--mode", MODE]


# --------------------------------------------------------------------------- binary


@pytest.fixture(scope="session")
def chm_bin() -> str:
    path = Path(os.environ.get("CHM_BIN") or REPO / "target" / "debug" / "cluster-health-mcp")
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"cluster-health-mcp binary not found or not executable at {path}; "
            "run `cargo build` first or point CHM_BIN at a built binary",
            pytrace=False,
        )
    return str(path)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --------------------------------------------------------------------------- server logs


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def server_logs(request, tmp_path) -> "LogDir":  # noqa: ANN001
    """Where servers write stderr; dumped into the report when the test fails."""
    logs = LogDir(tmp_path / "logs")
    logs.path.mkdir()
    yield logs
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for f in sorted(logs.path.iterdir()):
            text = f.read_text(errors="replace")
            print(f"----- server stderr {f.name} (last 4000 chars) -----\n{text[-4000:]}")


@dataclass
class LogDir:
    path: Path
    count: int = 0

    def new(self, name: str) -> Path:
        self.count += 1
        return self.path / f"{self.count:02d}-{name}.log"


async def wait_for_log(log: Path, pattern: str, timeout: float = 5.0, after: int = 0) -> str:
    """Wait until `pattern` (regex) appears in the log past byte offset `after`; return the match."""
    rx = re.compile(pattern)
    with anyio.move_on_after(timeout):
        while True:
            text = log.read_text(errors="replace")[after:]
            m = rx.search(text)
            if m:
                return m.group(0)
            await anyio.sleep(0.05)
    raise AssertionError(f"server log has no /{pattern}/ within {timeout}s; new log text:\n{text[-3000:]}")


# --------------------------------------------------------------------------- HTTP server


def server_env() -> dict[str, str]:
    """The environment for a server we start ourselves. CHM_BIN is dropped: the server reads
    every CHM_* variable as a setting and refuses to start on an unknown one ("unknown field:
    found `bin`"). (stdio_client already passes only a small default environment.)"""
    return {k: v for k, v in os.environ.items() if k != "CHM_BIN"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class HttpServer:
    base: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen
    log: Path

    @property
    def mcp_url(self) -> str:
        return f"{self.base}/mcp"

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as c:
            return await c.get(self.base + path)


@asynccontextmanager
async def http_server(
    chm_bin: str,
    spec_args: list[str],
    logs: LogDir,
    extra: list[str] = (),
    env: dict[str, str] | Callable[[str], dict[str, str]] = {},
) -> AsyncIterator[HttpServer]:
    """Start `serve --transport http` on a free loopback port; wait for /healthz. `env` adds
    settings, or makes them from the server's base URL (e.g. its canonical OAuth resource)."""
    last_error = ""
    for attempt in range(3):  # a port picked by free_port() can be taken in between: retry
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = logs.new(f"http-{port}")
        errf = open(log, "w")
        proc = subprocess.Popen(
            [chm_bin, *spec_args, "serve", "--transport", "http", "--bind", f"127.0.0.1:{port}", *extra],
            env=server_env() | (env(base) if callable(env) else env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errf,
        )
        server = HttpServer(base, proc, log)
        try:
            deadline = time.monotonic() + 10
            healthy = False
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if (await server.get("/healthz")).status_code == 200:
                        healthy = True
                        break
                except httpx.HTTPError:
                    pass
                await anyio.sleep(0.05)
            if not healthy:
                last_error = log.read_text(errors="replace")[-2000:]
                continue
            yield server
            return
        finally:
            _stop(proc)
            errf.close()
    pytest.fail(f"HTTP server did not become healthy (3 attempts); last stderr:\n{last_error}", pytrace=False)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --------------------------------------------------------------------------- notifications


@dataclass
class Notifications:
    """A ClientSession message_handler that records every server notification by type."""

    seen: list[tuple[float, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._event = anyio.Event()

    async def __call__(self, msg: Any) -> None:
        self.seen.append((time.monotonic(), msg))
        self._event.set()
        self._event = anyio.Event()

    def count(self, kind: type) -> int:
        return sum(1 for _, m in self.seen if isinstance(m, kind))

    def names(self) -> list[str]:
        return [type(m).__name__ for _, m in self.seen]

    async def wait_for(self, kind: type, *, after: int = 0, timeout: float = 5.0) -> float:
        """Wait until more than `after` notifications of `kind` arrived; return the arrival time."""
        with anyio.move_on_after(timeout):
            while True:
                times = [t for t, m in self.seen if isinstance(m, kind)]
                if len(times) > after:
                    return times[after]
                await self._event.wait()
        raise AssertionError(
            f"no {kind.__name__} #{after + 1} within {timeout}s; notifications so far: {self.names()}"
        )
