"""Prefect flows: wiring only; the rules live in ``tasks/``."""

import os

# Set before Prefect reads its settings: no usage telemetry from a tool that handles customer data.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# A temporary local server (no PREFECT_API_URL) can take more than the default 20 s to start on a
# small, busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# The ledger and the send executor log through the standard library: into the run's logs too.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "survey")
