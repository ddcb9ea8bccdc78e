"""The whole Closeloop stack as local processes: broker, PostgreSQL, four services, a demo owner.

``make run`` uses it interactively; the end-to-end tests use it with free ports.
Every service runs as its own OS process (``python -m closeloop_<name>``),
exactly as it would in a container, talking to the others over HTTP and Kafka.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from closeloop_devstack import infra
from closeloop_shared.config import KafkaSettings
from closeloop_shared.kafka.admin import ensure_topics

SERVICES = ("ingest", "sentiment", "alerts", "gateway")
PII_KEYS_FILE = "pii-keys.json"


def pii_keys(state_dir: Path) -> dict[str, str]:
    """The alerts service's PII keys of this state directory (``CLOSELOOP_ALERTS_PII_*``),
    generated on first use and kept (0600) so a restart reads what it stored before.
    Every checkout and test run has its own: there is no shared development key."""
    path = state_dir / PII_KEYS_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        key_id = time.strftime("dev-%Y%m%d", time.gmtime())
        generated = {
            "CLOSELOOP_ALERTS_PII_KEYS": f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}",
            "CLOSELOOP_ALERTS_PII_ACTIVE_KEY": key_id,
            "CLOSELOOP_ALERTS_PII_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
        }
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(generated, file, indent=2)
    keys: dict[str, str] = json.loads(path.read_text())
    return keys


@dataclass
class Ports:
    gateway: int = 8000
    ingest: int = 8001
    sentiment: int = 8002
    alerts: int = 8003
    demo_owner: int = 8099
    broker: int = 9092

    @classmethod
    def free(cls) -> Ports:
        return cls(*(infra.free_port() for _ in range(6)))

    def of(self, service: str) -> int:
        port: int = getattr(self, service.replace("-", "_"))
        return port


@dataclass
class ProviderSecrets:
    """Secrets the channel providers sign with; random per stack unless given."""

    twilio_auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    mailgun_signing_key: str = field(default_factory=lambda: "key-" + secrets.token_hex(16))
    postmark_user: str = "postmark"
    postmark_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    meta_app_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    meta_verify_token: str = field(default_factory=lambda: secrets.token_urlsafe(12))


@dataclass
class StackConfig:
    state_dir: Path
    routing_file: Path
    ports: Ports = field(default_factory=Ports)
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/closeloop"
    admin_key: str = field(default_factory=lambda: "clk_" + secrets.token_urlsafe(32))
    provider_secrets: ProviderSecrets = field(default_factory=ProviderSecrets)
    start_demo_owner: bool = True
    # Latency-friendly settings for a single machine (Tansu answers fetches only
    # when fetch_max_wait_ms expires).
    kafka_overrides: Mapping[str, str] = field(
        default_factory=lambda: {
            "CLOSELOOP_KAFKA_FETCH_MAX_WAIT_MS": "20",
            "CLOSELOOP_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "CLOSELOOP_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "CLOSELOOP_KAFKA_TOPIC_PARTITIONS": "6",
        }
    )
    extra_env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ManagedProcess:
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child until it exits
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self, timeout_s: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.broker: infra.Broker | None = None
        self.embedded_postgres: infra.EmbeddedPostgres | None = None
        self.database_url = config.database_url
        self.processes: dict[str, ManagedProcess] = {}
        self.log_dir = config.state_dir / "logs"

    # -- addresses ---------------------------------------------------------------------------

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.config.ports.of(service)}"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.config.ports.broker}"

    def kafka_settings(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            topic_partitions=int(
                self.config.kafka_overrides.get("CLOSELOOP_KAFKA_TOPIC_PARTITIONS", "6")
            ),
        )

    def environment(self) -> dict[str, str]:
        ports = self.config.ports
        provider = self.config.provider_secrets
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CLOSELOOP_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "CLOSELOOP_DATABASE_URL": self.database_url,
            "CLOSELOOP_ROUTING_FILE": str(self.config.routing_file),
            # Local owners (the demo owner, test receivers) live on loopback, which the
            # alerts service's SSRF guard refuses unless allowed explicitly.
            "CLOSELOOP_OUTBOUND_ALLOWLIST": "127.0.0.1,localhost",
            # Check SLA clocks every second (the demo's clocks are seconds long).
            "CLOSELOOP_ALERTS_SLA_POLL_INTERVAL_S": "1",
            "CLOSELOOP_BOOTSTRAP_ADMIN_KEY": self.config.admin_key,
            "CLOSELOOP_GATEWAY_PORT": str(ports.gateway),
            "CLOSELOOP_GATEWAY_INGEST_URL": self.url("ingest"),
            "CLOSELOOP_GATEWAY_ALERTS_URL": self.url("alerts"),
            "CLOSELOOP_INGEST_PORT": str(ports.ingest),
            "CLOSELOOP_SENTIMENT_PORT": str(ports.sentiment),
            "CLOSELOOP_ALERTS_PORT": str(ports.alerts),
            "CLOSELOOP_INGEST_TWILIO_AUTH_TOKEN": provider.twilio_auth_token,
            "CLOSELOOP_INGEST_MAILGUN_SIGNING_KEY": provider.mailgun_signing_key,
            "CLOSELOOP_INGEST_POSTMARK_BASIC_AUTH_USER": provider.postmark_user,
            "CLOSELOOP_INGEST_POSTMARK_BASIC_AUTH_PASSWORD": provider.postmark_password,
            "CLOSELOOP_INGEST_META_APP_SECRET": provider.meta_app_secret,
            "CLOSELOOP_INGEST_META_VERIFY_TOKEN": provider.meta_verify_token,
            **self.config.kafka_overrides,
            **pii_keys(self.config.state_dir),
        }
        env.update(self.config.extra_env)
        return env

    # -- lifecycle ---------------------------------------------------------------------------

    async def start_infrastructure(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.broker = infra.start_broker(self.config.ports.broker, self.log_dir / "broker.log")
        self.database_url, self.embedded_postgres = await infra.ensure_postgres(
            self.config.database_url, self.config.state_dir / "postgres"
        )
        await ensure_topics(self.kafka_settings())
        for service in ("gateway", "alerts"):
            self._run_once(service, [sys.executable, "-m", f"closeloop_{service}", "migrate"])

    def _run_once(self, name: str, command: list[str]) -> None:
        result = subprocess.run(
            command, env=self.environment(), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{name} migration failed:\n{result.stdout}\n{result.stderr}")

    def start_service(self, service: str) -> ManagedProcess:
        managed = ManagedProcess(
            name=service,
            command=[sys.executable, "-m", f"closeloop_{service}"],
            env=self.environment(),
            log_path=self.log_dir / f"{service}.log",
        )
        managed.start()
        self.processes[service] = managed
        return managed

    def start_demo_owner(self) -> ManagedProcess:
        managed = ManagedProcess(
            name="demo-owner",
            command=[
                sys.executable,
                "-m",
                "closeloop_devstack",
                "demo-owner",
                "--port",
                str(self.config.ports.demo_owner),
                "--routing-file",
                str(self.config.routing_file),
            ],
            env=self.environment(),
            log_path=self.log_dir / "demo-owner.log",
        )
        managed.start()
        self.processes["demo-owner"] = managed
        return managed

    async def start(self, timeout_s: float = 90.0) -> None:
        await self.start_infrastructure()
        if self.config.start_demo_owner:
            self.start_demo_owner()
        for service in SERVICES:
            self.start_service(service)
        await self.wait_ready(timeout_s)

    async def wait_ready(
        self,
        timeout_s: float = 90.0,
        services: tuple[str, ...] = SERVICES,
    ) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(services)
        async with httpx.AsyncClient(timeout=2.0) as client:
            while pending:
                for service in list(pending):
                    managed = self.processes.get(service)
                    if managed is not None and not managed.running:
                        raise RuntimeError(
                            f"{service} exited; see {managed.log_path}:\n" + _tail(managed.log_path)
                        )
                    try:
                        response = await client.get(self.url(service) + "/readyz")
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 200:
                        pending.discard(service)
                if not pending:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {timeout_s:.0f}s: {sorted(pending)}")
                await asyncio.sleep(0.25)

    def stop(self) -> None:
        # Edge first, so nothing new is accepted while the consumers drain.
        for name in ("gateway", "ingest", "sentiment", "alerts", "demo-owner"):
            managed = self.processes.get(name)
            if managed is not None:
                managed.terminate()
        if self.broker is not None:
            self.broker.stop()
        if self.embedded_postgres is not None:
            self.embedded_postgres.stop()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
