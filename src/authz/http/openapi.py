"""The OpenAPI 3.1 document of the AuthZEN endpoints, served at ``GET /openapi.json``.

Built once from the pydantic models the endpoints parse with (:mod:`authz.http.documents`), so
the schemas cannot drift from what is accepted; the paths, statuses and security are written
here. Immutable once built (a cached function), so threads may share it.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from authz.http import documents

VERSION = "1.0"
REF = "#/components/schemas/{model}"

_REQUESTS: tuple[type[BaseModel], ...] = (
    documents.Evaluation, documents.Evaluations, documents.Item, documents.SubjectSearch,
    documents.ResourceSearch, documents.ActionSearch,
)  # fmt: skip
_ANSWERS: tuple[type[BaseModel], ...] = (
    documents.DecisionAnswer, documents.EvaluationsAnswer, documents.EntitySearchAnswer,
    documents.ActionSearchAnswer, documents.Metadata,
)  # fmt: skip

_ERROR = {"content": {"text/plain": {"schema": {"type": "string", "description": "What is wrong, naming the field"}}}}
_ERRORS = {
    "400": {"description": "Missing or mistyped field, empty or malformed body, wrong Content-Type", **_ERROR},
    "401": {"description": "No valid bearer token where one is required", **_ERROR},
    "413": {"description": "Body over 4 MiB", **_ERROR},
    "500": {"description": "Internal error (never an allow)", **_ERROR},
    "503": {"description": "Not loaded yet, or context.min_revision not reached in time", **_ERROR},
}
_REQUEST_ID = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "Echoed on the response",
}
_OPERATIONS = (
    ("/access/v1/evaluation", "evaluation", "Access Evaluation: may the subject do the action on the resource?",
     documents.Evaluation, documents.DecisionAnswer),
    ("/access/v1/evaluations", "evaluations",
     "Access Evaluations: many at once; top-level values are defaults; options.evaluations_semantic is "
     "execute_all, deny_on_first_deny or permit_on_first_permit. Without items, one evaluation.",
     documents.Evaluations, documents.EvaluationsAnswer),
    ("/access/v1/search/subject", "search_subject", "Subject Search: who may do the action on the resource",
     documents.SubjectSearch, documents.EntitySearchAnswer),
    ("/access/v1/search/resource", "search_resource",
     "Resource Search: the resources of a type the subject may do the action on",
     documents.ResourceSearch, documents.EntitySearchAnswer),
    ("/access/v1/search/action", "search_action", "Action Search: what the subject may do on the resource",
     documents.ActionSearch, documents.ActionSearchAnswer),
)  # fmt: skip


@functools.cache
def _document() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in _REQUESTS]
    models += [(m, "serialization") for m in _ANSWERS]
    refs, schemas = models_json_schema(models, ref_template=REF)
    components = schemas["$defs"]
    # Items are parsed one by one (a bad item is a denied item), so the model says list[Any]; say more here.
    components["Evaluations"]["properties"]["evaluations"] = {
        "anyOf": [{"type": "array", "items": {"$ref": REF.format(model="Item")}}, {"type": "null"}],
        "description": "The evaluations; each key it leaves out comes from the top level",
    }
    paths: dict[str, Any] = {}
    for path, operation, summary, request, answer in _OPERATIONS:
        paths[path] = {"post": {
            "operationId": operation,
            "summary": summary,
            "security": [{"bearer": []}, {}],
            "parameters": [_REQUEST_ID],
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": refs[(request, "validation")]}}},
            "responses": {
                "200": {"description": "The answer (a denied decision is a 200 too)",
                        "content": {"application/json": {"schema": refs[(answer, "serialization")]}}},
                **_ERRORS,
            },
        }}  # fmt: skip
    paths["/.well-known/authzen-configuration"] = {"get": {
        "operationId": "metadata",
        "summary": "Policy Decision Point metadata: the base URL and every endpoint",
        "responses": {"200": {
            "description": "The metadata",
            "content": {"application/json": {"schema": refs[(documents.Metadata, "serialization")]}},
        }},
    }}  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "authz: AuthZEN Authorization API 1.0",
            "version": VERSION,
            "description": "The decision service's AuthZEN 1.0 HTTPS binding. Decisions are the same as gRPC "
            "authz.v1.Authorizer's, at the same revision. A bearer token is needed off loopback, or with "
            "--require-token.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a copy: callers may not change the cached one)."""
    return copy.deepcopy(_document())


@functools.cache
def rendered() -> bytes:
    """The document as JSON, rendered once for ``GET /openapi.json``."""
    return json.dumps(_document(), separators=(",", ":")).encode()
