"""Who holds a claim, and whether that process still runs (the process-liveness check).

An owner is ``host:pid:run``: a rerun on the same host can see that a claimant died and take
its chunk over at once; on another host only the lease (``engine.DEFAULT_LEASE``) can tell.
"""

from __future__ import annotations

import os
import socket


def owner_token(run_id: str) -> str:
    """Who holds a claim: host and pid let a rerun on the same host see that a claimant died."""
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"


def owner_is_dead(owner: str | None) -> bool:
    """Whether the claim's holder certainly stopped: no owner, or a dead process of this host."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine: only the lease can tell
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
