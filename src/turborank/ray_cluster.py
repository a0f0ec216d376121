"""Joining a Ray cluster, shared by ``score --ray`` and ``serve --ray``."""

from __future__ import annotations

import os


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (or the running Ray), or start a local one; True if started here."""
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        # Ray runs workers at nice 15, so on a shared machine the scoring actors would lose every contest.
        os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address=address, log_to_driver=False)
    return True
