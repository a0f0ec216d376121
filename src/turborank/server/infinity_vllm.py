"""Infinity's and vLLM's dialects: ``/rerank`` bodies with ``documents``, and vLLM's ``/score``.

Infinity (``fastapi_schemas/pymodels.py``): ``query``, ``documents``, ``return_documents`` (default
false), ``raw_scores``, ``model`` (default ``"default/not-specified"``), ``top_n``; results carry the
document as a plain string. vLLM (``entrypoints/pooling``): the same core plus ``truncate_prompt_tokens``,
``truncation_side``, ``use_activation``, ``priority``; results always carry ``document: {"text"}``.
Both answer ``{id, model, usage, results}`` (Infinity adds ``object`` and ``created``).

Their clients often send only the shared core (litellm's ``infinity/`` and ``hosted_vllm/`` providers
both post ``{model, query, documents, top_n, return_documents}``), and the two document shapes cannot
both be parsed by those clients, so: a body with ``raw_scores`` is Infinity's, one with a vLLM-only
field is vLLM's, and a body with neither gets the envelope both parse, results without documents.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.responses import JSONResponse

from .errors import EmptyInput, InvalidInput, JinaError, openapi_responses
from .jina import Usage
from .service import (
    NON_EMPTY_LIST,
    NonEmptyText,
    RerankRequest,
    Service,
    one_name_each,
    refuse_left_truncation,
)

INFINITY_UNNAMED_MODEL = "default/not-specified"  # what Infinity's client sends when no model is set
VLLM_ONLY_FIELDS = frozenset(
    {"truncate_prompt_tokens", "truncation_side", "use_activation", "priority", "request_id", "user"}
)


class SharedRerankRequest(BaseModel):
    """The core Infinity and vLLM clients share; answered with results that carry no documents.

    Strict as the other dialects: ``"5"`` is not a number and ``"yes"`` not a boolean."""

    model_config = ConfigDict(strict=True)
    model: str | None = Field(
        None,
        description="served model name or alias (absent or Infinity's 'default/not-specified': the first)",
    )
    query: NonEmptyText
    documents: Annotated[list[str], NON_EMPTY_LIST]
    top_n: int | None = Field(None, ge=0, description="results to return (0 or absent: all)")
    return_documents: bool | None = Field(
        None, description="accepted; echoed documents come only in the Infinity and vLLM forms"
    )

    @field_validator("model")
    @classmethod
    def unnamed_means_default(cls, model: str | None) -> str | None:
        # Here, not only on Infinity's own form: its client sends the placeholder on every body, and a
        # body without raw_scores (or one that adds a vLLM field) is parsed as another form.
        return None if model == INFINITY_UNNAMED_MODEL else model

    def documents_form(self) -> Literal["string", "object"] | None:
        """How results echo documents: Infinity's plain strings, vLLM's ``{"text"}``, or not at all."""
        return None

    def raw(self) -> bool:
        return False


class InfinityRerankRequest(SharedRerankRequest):
    return_documents: bool | None = Field(False, description="echo each document as a string")
    raw_scores: bool = Field(False, description="return logits instead of sigmoid scores")

    def documents_form(self) -> Literal["string", "object"] | None:
        return "string" if self.return_documents else None

    def raw(self) -> bool:
        return self.raw_scores


class VllmOptions(BaseModel):
    """vLLM's per-request options, shared by its /rerank and /score bodies."""

    truncate_prompt_tokens: int | None = Field(
        None, ge=-1, description="tokens per (query, document) pair; -1: the model's default length"
    )
    truncation_side: Literal["left", "right"] | None = Field(
        None, description="only right truncation is supported (the end of the document is cut)"
    )
    use_activation: bool | None = Field(None, description="false: logits instead of sigmoid scores")
    priority: int | None = Field(None, description="accepted for compatibility; requests are served FIFO")
    request_id: str | None = Field(None, description="accepted; X-Request-Id sets the logged id")
    user: str | None = Field(None, description="accepted and ignored")

    def truncation_options(self) -> dict[str, Any]:
        """``RerankRequest`` fields for vLLM's truncation knobs."""
        if self.truncation_side == "left":
            refuse_left_truncation("truncation_side")
        if self.truncate_prompt_tokens is None:
            return {}
        limit = self.truncate_prompt_tokens if self.truncate_prompt_tokens > 0 else None
        return {"truncate": True, "max_tokens_per_doc": limit, "length_field": "truncate_prompt_tokens"}

    def raw(self) -> bool:
        return self.use_activation is False


class VllmRerankRequest(VllmOptions, SharedRerankRequest):
    def documents_form(self) -> Literal["string", "object"] | None:
        return None if self.return_documents is False else "object"


class RankedDocument(BaseModel):
    index: int
    relevance_score: float
    document: str | dict[str, str] | None = None


class DocumentsRerankResponse(BaseModel):
    id: str
    object: str = "rerank"
    model: str
    created: int
    usage: Usage
    results: list[RankedDocument]


async def rerank_documents(
    body: SharedRerankRequest, request: Request, service: Service
) -> DocumentsRerankResponse:
    """Answer a /rerank body with ``documents`` in the dialect it came in."""
    options = body.truncation_options() if isinstance(body, VllmOptions) else {}
    outcome = await service.rerank(
        RerankRequest(body.query, body.documents, model=body.model, top_n=body.top_n or None, **options),
        request,
    )
    form = body.documents_form()
    results = []
    for r in outcome.results:
        ranked = RankedDocument(index=r.index, relevance_score=r.logit if body.raw() else r.relevance_score)
        if form is not None:
            text = body.documents[r.index]
            ranked.document = text if form == "string" else {"text": text}
        results.append(ranked)
    return DocumentsRerankResponse(
        id=request.state.request_id,
        model=outcome.model,
        created=int(time.time()),
        usage=_usage(outcome.total_tokens),
        results=results,
    )


def _usage(tokens: int) -> Usage:
    return Usage(total_tokens=tokens, prompt_tokens=tokens)


SCORE_SYNONYMS = one_name_each(("text_1", "queries"), ("text_2", "documents"))


class ScoreRequest(VllmOptions):
    model: str | None = Field(None, description="served model name or alias (default: the first model)")
    text_1: str | list[str] = Field(
        validation_alias=AliasChoices("text_1", "queries"),
        description="one query for every text_2, or one query per text_2 (vLLM's 1:N and N:N)",
    )
    text_2: str | list[str] = Field(validation_alias=AliasChoices("text_2", "documents"))

    @model_validator(mode="before")
    @classmethod
    def one_name_per_input(cls, body: Any) -> Any:
        # AliasChoices would take the first name present and silently drop the other.
        return SCORE_SYNONYMS(body)


class Score(BaseModel):
    index: int
    object: str = "score"
    score: float


class ScoreResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[Score]
    usage: Usage


SCORE = "Score text pairs (vLLM score API)"
router = APIRouter(tags=["vllm"])  # create_app adds the auth dependency when keys are set


@router.post("/score", response_model=ScoreResponse, responses=openapi_responses(JinaError), summary=SCORE)
@router.post("/v1/score", response_model=ScoreResponse, responses=openapi_responses(JinaError), summary=SCORE)
async def score(body: ScoreRequest, request: Request, service: Service) -> JSONResponse:
    groups = group_by_query(body.text_1, body.text_2)
    options = body.truncation_options()
    outcomes = await service.rerank_groups(
        [
            RerankRequest(
                query,
                [text for _, text in pairs],
                model=body.model,
                documents_field="text_2",
                query_field="text_1",
                **options,
            )
            for query, pairs in groups.items()
        ],
        request,
    )
    scores: dict[int, float] = {}
    for pairs, outcome in zip(groups.values(), outcomes, strict=True):
        for r in outcome.results:
            scores[pairs[r.index][0]] = r.logit if body.raw() else r.relevance_score
    response = ScoreResponse(
        id=request.state.request_id,
        created=int(time.time()),
        model=outcomes[0].model,
        data=[Score(index=i, score=scores[i]) for i in range(len(scores))],
        usage=_usage(sum(outcome.total_tokens for outcome in outcomes)),
    )
    return JSONResponse(response.model_dump())


def group_by_query(text_1: str | list[str], text_2: str | list[str]) -> dict[str, list[tuple[int, str]]]:
    """{query: [(position, document), ...]} in first-seen order, from vLLM's 1:1, 1:N or N:N inputs.

    Raises:
        EmptyInput, InvalidInput: no pairs, or lists of different lengths.
    """
    queries = [text_1] if isinstance(text_1, str) else text_1
    documents = [text_2] if isinstance(text_2, str) else text_2
    if not queries or not documents:
        raise EmptyInput("text_1 and text_2 must each hold at least one text")
    if len(queries) == 1:
        queries = queries * len(documents)
    if len(queries) != len(documents):
        raise InvalidInput(
            f"text_1 holds {len(queries)} texts and text_2 {len(documents)}: send one text_1 for all of "
            "text_2 (1:N) or one per text_2 (N:N)"
        )
    groups: dict[str, list[tuple[int, str]]] = {}
    for position, (query, document) in enumerate(zip(queries, documents, strict=True)):
        groups.setdefault(query, []).append((position, document))
    return groups
