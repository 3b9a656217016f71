"""Keep client mistakes out of the error log: BentoML logs a full traceback for every request that fails
pydantic validation (and every 503 while unready), which turns one fuzzing run or one bad client into pages."""

from __future__ import annotations

import logging

BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"


class ClientErrorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        from bentoml.exceptions import BentoMLException, ServiceUnavailable
        from pydantic import ValidationError

        expected = isinstance(exc, (ValidationError, ServiceUnavailable)) or (
            isinstance(exc, BentoMLException) and 400 <= exc.error_code.value < 500
        )
        if expected:
            # One line at INFO instead of an ERROR with a traceback: the client got a 4xx naming the problem,
            # or a 503 because the model is not loaded (already logged once, naming the bundle).
            record.msg = "%s rejected: %s"
            record.args = (record.args[0] if record.args else "request", type(exc).__name__)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def quiet_client_errors() -> None:
    logger = logging.getLogger(BENTOML_HTTP_LOGGER)
    if not any(isinstance(f, ClientErrorFilter) for f in logger.filters):
        logger.addFilter(ClientErrorFilter())
