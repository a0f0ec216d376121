"""Cohere's rerank dialect: ``POST /v2/rerank``, and the ``id``/``meta`` fields that /v1/rerank adds for v1.

Cohere v2 (https://docs.cohere.com, cohere-python ``v2/raw_client.py``): ``model`` is required,
documents are strings, ``max_tokens_per_doc`` caps each document, results never carry documents.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from .errors import JinaError, openapi_responses
from .service import NON_EMPTY_LIST, NonEmptyText, RerankOutcome, RerankRequest, Service


class ApiVersion(BaseModel):
    version: str


class BilledUnits(BaseModel):
    search_units: int


class MetaTokens(BaseModel):
    input_tokens: int
    output_tokens: int


class Meta(BaseModel):
    api_version: ApiVersion
    billed_units: BilledUnits
    tokens: MetaTokens


class CohereV2Request(BaseModel):
    """Strict: JSON types only (``"5"`` is not a number), as Cohere's typed SDKs always send them."""

    model_config = ConfigDict(strict=True)
    model: str = Field(description="served model name (see GET /v1/models)")
    query: NonEmptyText
    documents: Annotated[list[str], NON_EMPTY_LIST]
    top_n: int | None = Field(None, ge=1, description="results to return (default: all)")
    max_tokens_per_doc: int | None = Field(
        None, ge=1, description="tokens per (query, document) pair; longer ones are truncated"
    )
    priority: int | None = Field(None, description="accepted for compatibility; requests are served FIFO")


class CohereV2Result(BaseModel):
    index: int
    relevance_score: float


class CohereV2Response(BaseModel):
    id: str
    results: list[CohereV2Result]
    meta: Meta


def meta(outcome: RerankOutcome, num_documents: int, version: str) -> Meta:
    """Cohere's ``meta``: one search unit per 100 documents, as Cohere bills them."""
    return Meta(
        api_version=ApiVersion(version=version),
        billed_units=BilledUnits(search_units=max(1, math.ceil(num_documents / 100))),
        tokens=MetaTokens(input_tokens=outcome.total_tokens, output_tokens=0),
    )


router = APIRouter(tags=["cohere"])  # create_app adds the auth dependency when keys are set


@router.post(
    "/v2/rerank",
    response_model=CohereV2Response,
    responses=openapi_responses(JinaError),
    summary="Rerank documents (Cohere v2 API)",
)
async def rerank_v2(body: CohereV2Request, request: Request, service: Service) -> JSONResponse:
    outcome = await service.rerank(
        RerankRequest(
            query=body.query,
            documents=body.documents,
            model=body.model,
            top_n=body.top_n,
            max_tokens_per_doc=body.max_tokens_per_doc,
        ),
        request,
    )
    response = CohereV2Response(
        id=request.state.request_id,
        results=[CohereV2Result(index=r.index, relevance_score=r.relevance_score) for r in outcome.results],
        meta=meta(outcome, len(body.documents), "2"),
    )
    return JSONResponse(response.model_dump())
