"""``closeloop-alerts`` serves; ``closeloop-alerts migrate`` migrates the schema;
``closeloop-alerts check-routing [FILE]`` validates a routing file and exits."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import orjson
import uvicorn

from closeloop_alerts.app import SERVICE, SERVICE_LABEL, create_app, load_routing_config
from closeloop_alerts.config import AlertsSettings
from closeloop_alerts.migrate import upgrade
from closeloop_alerts.pii import PiiKeyError
from closeloop_alerts.privacy import run_rotation
from closeloop_alerts.routing import RoutingConfig, RoutingError, load_routing
from closeloop_shared.config import DatabaseSettings
from closeloop_shared.logging import configure_logging, get_logger

log = get_logger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=SERVICE, description="Closeloop alerts service")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    commands.add_parser("migrate", help="upgrade the alerts schema to the latest revision")
    rotate = commands.add_parser(
        "rotate-pii-key", help="re-seal stored customer data under the active PII key"
    )
    rotate.add_argument("--after", type=uuid.UUID, help="resume after this feedback id")
    check = commands.add_parser("check-routing", help="validate a routing file")
    check.add_argument("file", nargs="?", type=Path, help="default: CLOSELOOP_ROUTING_FILE")
    check.add_argument(
        "--samples",
        type=Path,
        help="JSON lines of {feedback, sentiment}: print the dry run of each as a JSON line",
    )
    args = parser.parse_args(argv)

    settings = AlertsSettings()
    if args.command == "check-routing":
        path = args.file or settings.routing_file
        if path is None:
            parser.error("no file given and CLOSELOOP_ROUTING_FILE is not set")
        try:
            config = load_routing(path)
        except RoutingError as error:
            print(error, file=sys.stderr)  # noqa: T201
            raise SystemExit(2) from None
        if args.samples is not None:
            _dry_run_samples(config, args.samples)
            return
        print(f"{path}: {len(config.owners)} owners, {len(config.rules)} rules")  # noqa: T201
        return

    configure_logging(SERVICE_LABEL, settings.log_level)
    if args.command == "migrate":
        upgrade(DatabaseSettings().url)
        log.info("schema_migrated", schema="alerts")
        return
    if args.command == "rotate-pii-key":
        report = asyncio.run(run_rotation(settings, DatabaseSettings(), after=args.after))
        print(orjson.dumps(dataclasses.asdict(report), default=str).decode())  # noqa: T201
        return
    try:
        # Validate before uvicorn starts, so a bad file or key is one readable message.
        load_routing_config(settings)
        settings.pii_keyring()
    except (RoutingError, PiiKeyError) as error:
        print(error, file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None

    # log_config=None keeps the JSON logging configured above.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


# What a sample may carry beyond what a dry run reads (a stored item, a full score).
_FEEDBACK_EXTRAS = ("id", "received_at")
_SENTIMENT_FIELDS = (
    "label", "score", "confidence", "language", "topics", "urgency", "urgency_cues", "emotions",
)  # fmt: skip


def _dry_run_samples(config: RoutingConfig, samples: Path) -> None:
    """One JSON line per sample: the dry-run answer of the file's routing (file owners)."""
    from pydantic import ValidationError

    from closeloop_alerts.routes import dry_run_answer
    from closeloop_alerts.routing import Router
    from closeloop_alerts.schemas import DryRunIn
    from closeloop_shared.events import utcnow

    router = Router(config)
    now = utcnow()
    failed = False
    for number, line in enumerate(samples.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = orjson.loads(line)
            feedback = {k: v for k, v in raw["feedback"].items() if k not in _FEEDBACK_EXTRAS}
            sentiment = {k: v for k, v in raw["sentiment"].items() if k in _SENTIMENT_FIELDS}
            body = DryRunIn.model_validate({"feedback": feedback, "sentiment": sentiment})
        except (
            orjson.JSONDecodeError,
            KeyError,
            TypeError,
            AttributeError,
            ValidationError,
        ) as error:
            print(f"{samples}:{number}: not a sample: {error}", file=sys.stderr)  # noqa: T201
            failed = True
            continue
        answer = dry_run_answer(router, body, now)
        print(orjson.dumps(answer.model_dump(mode="json")).decode())  # noqa: T201
    if failed:
        raise SystemExit(2)


if __name__ == "__main__":
    main()
