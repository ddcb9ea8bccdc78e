"""``closeloop`` / ``python -m closeloop_cli``."""

from __future__ import annotations

from closeloop_cli.app import cli


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
