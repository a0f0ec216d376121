"""turborank: fast, self-hostable JinaBERT / BERT cross-encoder rerankers."""

from .api import Reranker, RerankResult
from .chunking import LongDocuments
from .errors import BackendError, CheckpointError, InputError, ModelNotFoundError, TurborankError

__all__ = [
    "BackendError",
    "CheckpointError",
    "InputError",
    "LongDocuments",
    "ModelNotFoundError",
    "RerankResult",
    "Reranker",
    "TurborankError",
]
__version__ = "0.1.0"
