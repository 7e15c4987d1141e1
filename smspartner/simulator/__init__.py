"""A local stand-in for the SMS Partner API: a real HTTP server for tests and the demo.

Purpose: implement what our client uses, under ``/v1/``, validate like the documented API
(``smspartner-api.md``), record what it accepted, and inject faults on demand. Tests assert on
what it recorded (``SimulatorState.sends``, ``accepted_numbers()``, ``requests``), not on mocks.
It is NOT the gateway: no quiet hours, no real delivery, one SMS billed per survey recipient;
production code never imports it (tests, ``scripts/``, ``bench/`` do).

Entry points: ``run_simulator()`` / ``SimulatorServer`` (in a thread), ``start_process()`` and
``python -m smspartner.simulator --port 8765`` (a process of its own, see ``cli.py``),
``FaultConfig`` for the faults.

Layout, each module importing only those above it:

- ``reply.py``   one HTTP reply and the API's error envelopes
- ``faults.py``  ``FaultConfig`` and what each fault answers (the seeded draws' order)
- ``state.py``   what the gateway knows (credits, sends, STOP list, clock), under one lock
- ``api.py``     the vendor's endpoints: validation and the answers' shapes
- ``admin.py``   the test-control endpoints under ``/_sim/`` (no key)
- ``server.py``  the HTTP server, in a thread or a process
- ``cli.py``     the command line (``__main__.py`` runs it)

The API key is never logged nor stored in the request log.
"""

from __future__ import annotations

from smspartner.simulator.cli import main
from smspartner.simulator.faults import GARBAGE_KINDS, FaultConfig
from smspartner.simulator.server import SimulatorServer, run_simulator, start_process
from smspartner.simulator.state import DEFAULT_API_KEY, SimulatorState, to_e164

__all__ = [
    "DEFAULT_API_KEY",
    "GARBAGE_KINDS",
    "FaultConfig",
    "SimulatorServer",
    "SimulatorState",
    "main",
    "run_simulator",
    "start_process",
    "to_e164",
]
