"""``turborank score``: score files of (query, document) pairs, in one process or on a Ray cluster.

Importing this package is cheap; ``require_pyarrow`` checks the ``score`` extra before use.
"""

from __future__ import annotations

import importlib.util


def require_pyarrow() -> None:
    """Raise an ImportError that names the pip extra when pyarrow is missing."""
    if importlib.util.find_spec("pyarrow") is None:
        raise ImportError("turborank score needs pyarrow: pip install 'turborank[score]'")
