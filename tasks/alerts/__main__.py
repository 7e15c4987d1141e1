"""``python -m tasks.alerts --block TYPE/NAME``: create the campaign alerts (see the package)."""

from __future__ import annotations

import sys

from tasks.steps.alerts import main

if __name__ == "__main__":
    sys.exit(main())
