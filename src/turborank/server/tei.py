"""Hugging Face TEI's dialect: ``POST /rerank`` (``texts`` in, a bare JSON array out) and ``GET /info``.

TEI (router/src/http/types.rs): ``truncate`` (default: the server's setting), ``truncation_direction``,
``raw_scores`` (logits instead of sigmoid), ``return_text``; errors are ``{"error", "error_type"}``.
TEI has no ``model`` field; turborank accepts one as an extension (default: the first model).
``/rerank`` also takes Infinity's and vLLM's bodies (``documents`` instead of ``texts``) and answers
each in its own dialect (see ``infinity_vllm``); errors on ``/rerank`` keep TEI's envelope.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
)
from pydantic_core import CoreSchema
from starlette.responses import JSONResponse

from .. import __version__
from .errors import JinaError, TeiError, openapi_responses
from .infinity_vllm import (
    VLLM_ONLY_FIELDS,
    DocumentsRerankResponse,
    InfinityRerankRequest,
    SharedRerankRequest,
    VllmRerankRequest,
    rerank_documents,
)
from .service import (
    NON_EMPTY_LIST,
    NonEmptyText,
    RerankRequest,
    Service,
    one_name_each,
    refuse_left_truncation,
)

PATHS = frozenset({"/rerank"})  # routes whose errors use TEI's envelope


class TeiRequest(BaseModel):
    """Strict like TEI's serde types: ``"5"`` is not a number and ``"yes"`` not a boolean."""

    model_config = ConfigDict(strict=True)
    query: NonEmptyText
    texts: Annotated[list[str], NON_EMPTY_LIST]
    truncate: bool | None = Field(None, description="truncate over-long pairs (default: --auto-truncate)")
    truncation_direction: Literal["right", "left", "Right", "Left"] = Field(
        "right", description="only right truncation is supported (the end of the document is cut)"
    )
    raw_scores: bool = Field(False, description="return logits instead of sigmoid scores")
    return_text: bool = Field(False, description="echo each text in its result")
    model: str | None = Field(None, description="turborank extension: served model name")


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None


def body_dialect(body: Any) -> str | None:
    """Which dialect a /rerank body speaks; None for a body that mixes Infinity's and vLLM's fields."""
    if isinstance(body, BaseModel):
        return DIALECTS[type(body)]
    if not isinstance(body, dict) or "texts" in body or "documents" not in body:
        return "tei"  # TEI's own validation then names what is missing
    vllm, infinity = bool(VLLM_ONLY_FIELDS & body.keys()), "raw_scores" in body
    if vllm and infinity:
        return None
    return "vllm" if vllm else "infinity" if infinity else "shared"


DIALECTS: dict[type[BaseModel], str] = {
    TeiRequest: "tei",
    InfinityRerankRequest: "infinity",
    VllmRerankRequest: "vllm",
    SharedRerankRequest: "shared",
}


class OverlappingBranches:
    """Documents the body union as ``anyOf``: OpenAPI's ``oneOf`` demands that exactly one branch match,
    but a shared body is also a valid Infinity and vLLM body (the dialect follows the fields present)."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        schema = handler(core_schema)
        if "oneOf" in schema:
            schema["anyOf"] = schema.pop("oneOf")
        return schema


RerankBody = Annotated[
    Annotated[TeiRequest, Tag("tei")]
    | Annotated[InfinityRerankRequest, Tag("infinity")]
    | Annotated[VllmRerankRequest, Tag("vllm")]
    | Annotated[SharedRerankRequest, Tag("shared")],
    Discriminator(
        body_dialect,
        custom_error_type="dialect",
        custom_error_message="the body mixes Infinity's raw_scores with vLLM-only fields "
        f"({', '.join(sorted(VLLM_ONLY_FIELDS))}); send one dialect (vLLM: use_activation=false for logits)",
    ),
    OverlappingBranches(),
    BeforeValidator(one_name_each(("texts", "documents"))),  # checked before the dialect is picked
]


class TeiInfo(BaseModel):
    """TEI's ``/info`` for the default model (TEI serves one model per process)."""

    model_id: str
    model_sha: str | None = None
    model_dtype: str
    model_type: dict[str, Any]
    max_input_length: int
    max_batch_tokens: int
    max_batch_requests: int
    max_client_batch_size: int
    auto_truncate: bool
    version: str


router = APIRouter(tags=["tei"])  # create_app adds the auth dependency when keys are set


@router.post(
    "/rerank",
    response_model=list[TeiRank] | DocumentsRerankResponse,
    responses=openapi_responses(TeiError),
    summary="Rerank texts (Hugging Face TEI API; Infinity and vLLM bodies too)",
)
async def rerank_tei(body: Annotated[RerankBody, Body()], request: Request, service: Service) -> JSONResponse:
    if not isinstance(body, TeiRequest):
        response = await rerank_documents(body, request, service)
        return JSONResponse(response.model_dump(exclude_none=True))
    if body.truncation_direction.lower() == "left":
        refuse_left_truncation("truncation_direction")
    outcome = await service.rerank(
        RerankRequest(
            query=body.query,
            documents=body.texts,
            model=body.model,
            truncate=body.truncate,
            documents_field="texts",
        ),
        request,
    )
    ranks = []
    for r in outcome.results:
        rank = {"index": r.index, "score": r.logit if body.raw_scores else r.relevance_score}
        if body.return_text:
            rank["text"] = body.texts[r.index]
        ranks.append(rank)
    return JSONResponse(ranks, headers={"X-Total-Tokens": str(outcome.total_tokens)})


@router.get(
    "/info",
    response_model=TeiInfo,
    responses=openapi_responses(JinaError, exclude=(400, 413, 422, 429, 499, 504)),
    summary="The default model and the server's limits (Hugging Face TEI API)",
)
async def info(service: Service) -> TeiInfo:
    served = service.models[service.default]
    reranker, config = served.reranker, service.config
    labels = reranker.config.num_labels
    return TeiInfo(
        model_id=served.name,
        model_dtype=str(reranker.dtype).removeprefix("torch."),
        model_type={
            "reranker" if labels == 1 else "classifier": {
                "id2label": {str(i): f"LABEL_{i}" for i in range(labels)},
                "label2id": {f"LABEL_{i}": i for i in range(labels)},
            }
        },
        max_input_length=service.length_limits(reranker)[0],
        max_batch_tokens=reranker.engine.max_batch_tokens,
        max_batch_requests=reranker.engine.max_batch_size,
        max_client_batch_size=config.max_documents,
        auto_truncate=config.auto_truncate,
        version=__version__,
    )
