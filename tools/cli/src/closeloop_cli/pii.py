"""Customer contact data is stored sealed (:mod:`closeloop_alerts.pii`): exporting it in
clear needs the alerts service's PII keys (``CLOSELOOP_ALERTS_PII_*``) in the environment."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from closeloop_alerts.config import AlertsSettings
from closeloop_alerts.pii import PiiKeyError, open_customer
from closeloop_cli.output import OperatorError

CustomerOpener = Callable[[uuid.UUID, dict[str, Any]], dict[str, Any]]


def customer_opener() -> CustomerOpener:
    try:
        keyring = AlertsSettings().pii_keyring()
    except (PiiKeyError, ValueError) as error:
        raise OperatorError(f"cannot export customer data: {error}") from None

    def opened(feedback_id: uuid.UUID, stored: dict[str, Any]) -> dict[str, Any]:
        return open_customer(keyring, feedback_id, stored)

    return opened
