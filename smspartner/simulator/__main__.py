"""``python -m smspartner.simulator``: see ``cli.py``."""

from __future__ import annotations

import sys

from smspartner.simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
