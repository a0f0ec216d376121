"""Jina's rerank dialect on ``POST /v1/rerank``; Cohere v1 requests are served by the same route.

Jina (api.jina.ai OpenAPI 2024-2026): documents are strings or ``{"text": ..., other fields}`` objects
(mixed), ``return_documents`` defaults to true, results carry ``document: {"text": ...}`` with the other
fields echoed. Cohere v1 adds ``rank_fields`` and ``max_chunks_per_doc``; the response carries Cohere's
``id`` and ``meta`` next to Jina's fields, so either SDK parses it. One deviation: Cohere v1 defaults
``return_documents`` to false, Jina to true; a shared route can honour only one, and it is Jina's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from .cohere import Meta, meta
from .errors import InvalidInput, JinaError, openapi_responses
from .service import NON_EMPTY_LIST, NonEmptyText, RerankRequest, Service


class TextDoc(BaseModel):
    """A document object: ``text`` plus any other fields, which are echoed back."""

    model_config = ConfigDict(extra="allow")
    text: str | None = Field(None, description="required unless rank_fields names other fields")


class JinaRequest(BaseModel):
    """Strict: JSON types only (``"5"`` is not a number, ``"yes"`` not a boolean), as the schema says."""

    model_config = ConfigDict(strict=True)

    model: str | None = Field(None, description="served model name (default: the server's first model)")
    query: NonEmptyText | TextDoc
    documents: Annotated[list[str | TextDoc], NON_EMPTY_LIST]
    top_n: int | None = Field(None, ge=1, description="results to return (default: all)")
    return_documents: bool | None = Field(None, description="echo documents in results (default true)")
    truncation: bool | None = Field(
        None, description="truncate pairs over the token limit (default: the server's --auto-truncate)"
    )
    rank_fields: list[str] | None = Field(
        None, description="Cohere v1: object fields joined (one per line) into the text that is ranked"
    )
    max_chunks_per_doc: int | None = Field(
        None,
        ge=1,
        description="Cohere v1: score long documents in windows (at most this many; best one counts)",
    )


class JinaResult(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, Any] | None = None


class Usage(BaseModel):
    total_tokens: int
    prompt_tokens: int


class JinaResponse(BaseModel):
    model: str
    object: str = "list"
    usage: Usage
    results: list[JinaResult]
    id: str
    meta: Meta


def document_text(document: str | TextDoc, where: str, rank_fields: list[str] | None) -> str:
    """The text ranked for one document: the string, its ``text``, or its rank_fields one per line.

    Raises:
        InvalidInput: naming the document and the missing or non-string field.
    """
    if isinstance(document, str):
        return document
    fields = rank_fields or ["text"]
    data = document.model_dump()
    parts = []
    for name in fields:
        value = data.get(name)
        if not isinstance(value, str):
            reason = (
                "rank_fields names it" if rank_fields else f'send {where} as a string or as {{"text": ...}}'
            )
            raise InvalidInput(f"{where}.{name} must be a string: {reason}")
        parts.append(value)
    return "\n".join(parts)


def echoed(document: str | TextDoc) -> dict[str, Any]:
    if isinstance(document, str):
        return {"text": document}
    return document.model_dump(exclude_unset=True)


router = APIRouter(tags=["jina"])  # create_app adds the auth dependency when keys are set


@router.post(
    "/v1/rerank",
    response_model=JinaResponse,
    response_model_exclude_unset=True,
    responses=openapi_responses(JinaError),
    summary="Rerank documents (Jina Reranker API; Cohere v1 requests too)",
)
async def rerank_v1(body: JinaRequest, request: Request, service: Service) -> JSONResponse:
    query = document_text(body.query, "query", None)
    texts = [document_text(d, f"documents[{i}]", body.rank_fields) for i, d in enumerate(body.documents)]
    outcome = await service.rerank(
        RerankRequest(
            query=query,
            documents=texts,
            model=body.model,
            top_n=body.top_n,
            truncate=body.truncation,
            max_chunks_per_doc=body.max_chunks_per_doc,
        ),
        request,
    )
    with_documents = body.return_documents is not False
    results = [
        JinaResult(index=r.index, relevance_score=r.relevance_score, document=echoed(body.documents[r.index]))
        if with_documents
        else JinaResult(index=r.index, relevance_score=r.relevance_score)
        for r in outcome.results
    ]
    response = JinaResponse(
        model=outcome.model,
        object="list",
        usage=Usage(total_tokens=outcome.total_tokens, prompt_tokens=outcome.total_tokens),
        results=results,
        id=request.state.request_id,
        meta=meta(outcome, len(body.documents), "1"),
    )
    return JSONResponse(response.model_dump(exclude_unset=True))
