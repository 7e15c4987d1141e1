"""Prefect flows: wiring only; the rules live in ``tasks/``."""

import os

# Set before Prefect reads its settings: no usage telemetry from a tool that handles customer data.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
