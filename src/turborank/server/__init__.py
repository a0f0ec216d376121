"""HTTP rerank server (``turborank serve``): Jina, Cohere and TEI APIs over one batching scheduler.

Importing this package is cheap; ``require_dependencies`` checks the ``server`` extra before use.
"""

from __future__ import annotations

import importlib.util

SERVER_PACKAGES = ("fastapi", "uvicorn", "pydantic", "prometheus_client")
SERVER_PACKAGES += ("fastapi_offline", "pythonjsonlogger")  # offline /docs, JSON log lines


def require_dependencies() -> None:
    """Raise an ImportError that names the pip extra when a server dependency is missing."""
    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"turborank serve needs {', '.join(missing)}: pip install 'turborank[server]'")
