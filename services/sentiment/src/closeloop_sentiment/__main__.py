"""``closeloop-sentiment`` / ``python -m closeloop_sentiment``: run the service under uvicorn."""

from __future__ import annotations

import uvicorn

from closeloop_sentiment.app import SERVICE_LABEL, create_app
from closeloop_sentiment.config import SentimentSettings
from closeloop_shared.config import KafkaSettings
from closeloop_shared.logging import configure_logging


def main() -> None:
    settings = SentimentSettings()
    configure_logging(SERVICE_LABEL, settings.log_level)
    # log_config=None keeps the JSON handlers configure_logging installed.
    uvicorn.run(
        create_app(settings, KafkaSettings()),
        host=settings.host,
        port=settings.port,
        log_config=None,
    )


if __name__ == "__main__":
    main()
