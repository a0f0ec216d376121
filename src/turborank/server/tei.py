"""Hugging Face TEI's rerank dialect on ``POST /rerank``: ``texts`` in, a bare JSON array out.

TEI (router/src/http/types.rs): ``truncate`` (default: the server's setting), ``truncation_direction``,
``raw_scores`` (logits instead of sigmoid), ``return_text``; errors are ``{"error", "error_type"}``.
TEI has no ``model`` field; turborank accepts one as an extension (default: the first model).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from .errors import InvalidInput, TeiError, openapi_responses
from .service import NON_EMPTY_LIST, NonEmptyText, RerankRequest, Service

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


router = APIRouter(tags=["tei"])  # create_app adds the auth dependency when keys are set


@router.post(
    "/rerank",
    response_model=list[TeiRank],
    responses=openapi_responses(TeiError),
    summary="Rerank texts (Hugging Face TEI API)",
)
async def rerank_tei(body: TeiRequest, request: Request, service: Service) -> JSONResponse:
    if body.truncation_direction.lower() == "left":
        raise InvalidInput(
            "truncation_direction: 'left' is not supported; turborank keeps the start of each document "
            "(send 'right' or leave it out)"
        )
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
