"""``closeloop-devstack``: run the whole stack locally (``make run``) and the demo (``make demo``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

from closeloop_devstack.stack import Ports, ProviderSecrets, Stack, StackConfig

STATE_DIR = Path("var")
STATE_FILE = STATE_DIR / "devstack.json"
DEFAULT_ROUTING = Path("deploy/local/routing.yaml")


def _load_state() -> dict[str, object]:
    try:
        loaded: dict[str, object] = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return loaded


async def _run(args: argparse.Namespace) -> int:
    previous = _load_state()
    # Reuse the last run's secrets and admin key so `make demo` and saved curl commands keep working.
    saved_secrets = previous.get("provider_secrets")
    secrets = (
        ProviderSecrets(**saved_secrets) if isinstance(saved_secrets, dict) else ProviderSecrets()
    )
    config = StackConfig(
        state_dir=STATE_DIR.resolve(),
        routing_file=Path(os.environ.get("CLOSELOOP_ROUTING_FILE", DEFAULT_ROUTING)).resolve(),
        ports=Ports(),
        database_url=os.environ.get(
            "CLOSELOOP_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/closeloop"
        ),
        provider_secrets=secrets,
    )
    admin_key = os.environ.get("CLOSELOOP_BOOTSTRAP_ADMIN_KEY") or previous.get("admin_key")
    if isinstance(admin_key, str) and admin_key:
        config.admin_key = admin_key
    stack = Stack(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    print("Starting broker, PostgreSQL, topics and migrations ...", flush=True)
    try:
        await stack.start(timeout_s=args.timeout)
    except BaseException:
        stack.stop()
        raise
    STATE_FILE.write_text(
        json.dumps(
            {
                "gateway_url": stack.url("gateway"),
                "demo_owner_url": stack.url("demo_owner"),
                "alerts_url": stack.url("alerts"),
                "admin_key": config.admin_key,
                "database_url": stack.database_url,
                "provider_secrets": dataclasses.asdict(config.provider_secrets),
            },
            indent=2,
        )
    )
    STATE_FILE.chmod(0o600)
    _print_banner(stack)
    while not stopping.is_set():
        for name, managed in stack.processes.items():
            if not managed.running:
                print(f"!! {name} exited; last lines of {managed.log_path}:", flush=True)
                print(managed.log_path.read_text(errors="replace")[-2000:], flush=True)
                stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), 1.0)
    print("\nStopping services, broker and database ...", flush=True)
    stack.stop()
    print("Stopped.", flush=True)
    return 0


def _print_banner(stack: Stack) -> None:
    gateway = stack.url("gateway")
    print(
        f"""
Closeloop is running.

  Support console       {gateway}/console   (sign in with the admin key below)
  Public API (gateway)  {gateway}
  API docs              {gateway}/docs   (OpenAPI: {gateway}/openapi.json)
  Admin API key         {stack.config.admin_key}
  Metrics               {gateway}/metrics  {stack.url("ingest")}/metrics
                        {stack.url("sentiment")}/metrics  {stack.url("alerts")}/metrics
  Demo owner            {stack.url("demo_owner")}/received  (alerts delivered to owners)
  Broker / database     {stack.bootstrap_servers}  /  {stack.database_url}
  Logs (JSON lines)     {stack.log_dir}/*.log

In another terminal: `make demo` posts feedback from every channel. Ctrl-C stops everything.
""",
        flush=True,
    )


async def _demo(args: argparse.Namespace) -> int:
    from closeloop_devstack.demo import DemoTarget, run_demo

    state = _load_state()
    if not state:
        print("No running stack found (var/devstack.json). Start one with `make run`.")
        return 2
    secrets = state["provider_secrets"]
    assert isinstance(secrets, dict)
    target = DemoTarget(
        gateway_url=str(state["gateway_url"]),
        demo_owner_url=str(state["demo_owner_url"]),
        alerts_url=str(state.get("alerts_url", "http://127.0.0.1:8003")),
        admin_key=str(state["admin_key"]),
        secrets=ProviderSecrets(**secrets),
    )
    return await run_demo(target, wait_s=args.wait)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="closeloop-devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start broker, PostgreSQL and all four services")
    run.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    demo = commands.add_parser("demo", help="post demo feedback to the running stack")
    demo.add_argument("--wait", type=float, default=30.0, help="seconds to wait for alerts")
    owner = commands.add_parser("demo-owner", help="serve the local demo owner webhook receiver")
    owner.add_argument("--port", type=int, default=8099)
    owner.add_argument("--routing-file", type=Path, default=DEFAULT_ROUTING)
    args = parser.parse_args(argv)
    if args.command == "run":
        return asyncio.run(_run(args))
    if args.command == "demo":
        return asyncio.run(_demo(args))
    from closeloop_devstack.demo_owner import serve

    serve(args.port, args.routing_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
