"""``closeloop-ingest`` / ``python -m closeloop_ingest``: run the ingest service."""

from __future__ import annotations

import uvicorn

from closeloop_ingest.app import SERVICE, create_app
from closeloop_ingest.config import IngestSettings
from closeloop_shared.config import KafkaSettings
from closeloop_shared.logging import configure_logging


def main() -> None:
    settings = IngestSettings()
    configure_logging(SERVICE, settings.log_level)
    app = create_app(settings, KafkaSettings())
    # log_config=None keeps uvicorn from replacing the JSON logging configured above.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
