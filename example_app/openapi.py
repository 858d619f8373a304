"""The OpenAPI 3.1 document of the example, served at ``/openapi.json``.

Built from the same limits the handlers enforce (page sizes, name patterns,
lengths), so the document and the server cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from .assets import BEHAVIOUR, MAX_ATTRIBUTES, MAX_VALUE_LENGTH, PROOF_MECHANISMS
from .registrations import CUSTOM_CLAIM_PATTERN, NON_BLANK, ROLE
from .settings import ISSUER_PATH
from .validation import MAX_PAGE_SIZE, NAME

bp = Blueprint("openapi", __name__)

_REF = "#/components/schemas/"


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF + schema}}}


def _error(description: str, schema: str = "Status") -> dict[str, Any]:
    return {"description": description, "content": _json(schema)}


_AUTH_ERRORS = {
    "401": {
        **_error("Missing, invalid or expired access token (RFC 6750 §3.1)", "BearerError"),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "403": {
        **_error("The token lacks a required role (RFC 6750 §3.1)", "BearerError"),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
}
_BAD = {"400": _error("Invalid request")}
_BODY_ERRORS = {
    **_BAD,
    "413": _error("The body exceeds the size limit"),
    "415": _error("The body is not application/json"),
}
_NOT_FOUND = {"404": _error("Not found")}
_PAGE_PARAMS = [
    {
        "name": "page_size",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
        "description": "Maximum results per page; remembered by page_token.",
    },
    {
        "name": "page_token",
        "in": "query",
        "schema": {"type": "string", "maxLength": 2048},
        "description": "next_page_token of the previous page.",
    },
]


def _uuid_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def _string_map(max_items: int, max_length: int) -> dict[str, Any]:
    return {
        "type": "object",
        "maxProperties": max_items,
        "propertyNames": {"pattern": NAME.pattern},
        "additionalProperties": {"type": "string", "maxLength": max_length},
    }


def _schemas() -> dict[str, Any]:
    attribute_value = {
        "oneOf": [
            {"type": "string", "maxLength": MAX_VALUE_LENGTH},
            {"type": "array", "maxItems": 20, "items": _string_map(20, MAX_VALUE_LENGTH)},
        ]
    }
    credential = {
        "type": "object",
        "required": ["valid_from", "valid_until"],
        "properties": {
            "secret": {"type": "string", "description": "Shown only at creation or regeneration."},
            "valid_from": {"type": "string", "format": "date-time"},
            "valid_until": {"type": "string", "format": "date-time"},
        },
        "additionalProperties": False,
    }
    roles = {
        "type": "array",
        "minItems": 1,
        "maxItems": 16,
        "items": {"type": "string", "pattern": ROLE.pattern},
    }
    return {
        "Status": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "integer", "description": "gRPC status code"},
                "message": {"type": "string"},
                "details": {"type": "array"},
            },
        },
        "BearerError": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
        },
        "OAuthError": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "enum": ["invalid_request", "invalid_client", "unsupported_grant_type"],
                },
                "error_description": {"type": "string"},
            },
        },
        "TokenRequest": {
            "type": "object",
            "required": ["grant_type"],
            "properties": {
                "grant_type": {"type": "string", "enum": ["client_credentials"]},
                "client_id": {"type": "string"},
                "client_secret": {"type": "string"},
            },
        },
        "TokenResponse": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in"],
            "properties": {
                "access_token": {"type": "string"},
                "token_type": {"const": "Bearer"},
                "expires_in": {"type": "integer"},
            },
        },
        "AssetCreate": {
            "type": "object",
            "required": ["behaviours", "attributes"],
            "additionalProperties": False,
            "properties": {
                "behaviours": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 20,
                    "items": {"type": "string", "pattern": BEHAVIOUR.pattern},
                },
                "attributes": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": MAX_ATTRIBUTES,
                    "propertyNames": {"pattern": NAME.pattern},
                    "additionalProperties": attribute_value,
                },
                "proof_mechanism": {"enum": list(PROOF_MECHANISMS)},
                "public": {"type": "boolean"},
            },
        },
        "Asset": {
            "type": "object",
            "required": [
                "identity",
                "behaviours",
                "attributes",
                "confirmation_status",
                "tracked",
                "at_time",
                "proof_mechanism",
                "public",
                "tenant_identity",
            ],
            "properties": {
                "identity": {"type": "string", "pattern": "^assets/[0-9a-f-]{36}$"},
                "behaviours": {"type": "array", "items": {"type": "string"}},
                "attributes": {"type": "object", "additionalProperties": attribute_value},
                "confirmation_status": {
                    "enum": ["PENDING", "CONFIRMED", "FAILED", "STORED", "COMMITTED", "UNEQUIVOCAL"]
                },
                "tracked": {"enum": ["TRACKED", "NOT_TRACKED"]},
                "at_time": {"type": "string", "format": "date-time"},
                "proof_mechanism": {"enum": list(PROOF_MECHANISMS)},
                "public": {"type": "boolean"},
                "tenant_identity": {"type": "string"},
            },
        },
        "AssetList": {
            "type": "object",
            "required": ["assets", "next_page_token"],
            "properties": {
                "assets": {"type": "array", "items": {"$ref": _REF + "Asset"}},
                "next_page_token": {"type": "string", "description": "Empty on the last page."},
            },
        },
        "ApplicationCreate": {
            "type": "object",
            "required": ["display_name"],
            "additionalProperties": False,
            "properties": {
                "display_name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NON_BLANK},
                "custom_claims": {
                    **_string_map(32, 1024),
                    "propertyNames": {"pattern": CUSTOM_CLAIM_PATTERN},
                    "description": "Names must not start with jit_ or arc_, nor be registered JWT or ID-token claim names.",
                },
                "roles": roles,
            },
        },
        "Application": {
            "type": "object",
            "required": ["identity", "display_name", "client_id", "tenant_id", "credentials", "custom_claims", "roles"],
            "properties": {
                "identity": {"type": "string", "pattern": "^applications/[0-9a-f-]{36}$"},
                "display_name": {"type": "string"},
                "client_id": {"type": "string", "format": "uuid"},
                "tenant_id": {"type": "string"},
                "credentials": {"type": "array", "items": credential},
                "custom_claims": {"type": "object", "additionalProperties": {"type": "string"}},
                "roles": {"type": "array", "items": {"type": "string"}},
            },
        },
        "ApplicationList": {
            "type": "object",
            "required": ["applications", "next_page_token"],
            "properties": {
                "applications": {"type": "array", "items": {"$ref": _REF + "Application"}},
                "next_page_token": {"type": "string"},
            },
        },
        "Empty": {"type": "object", "maxProperties": 0},
    }


def _paths(token_path: str) -> dict[str, Any]:
    ok = "200"
    bearer_only: list[dict[str, list[str]]] = [{"oauth2": []}]
    return {
        token_path: {
            "post": {
                "operationId": "getToken",
                "summary": "Client-credentials token (RFC 6749 §4.4)",
                "security": [{}, {"basicClient": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": {"$ref": _REF + "TokenRequest"}}},
                },
                "responses": {
                    ok: {"description": "A bearer token", "content": _json("TokenResponse")},
                    "400": _error("Invalid request (RFC 6749 §5.2)", "OAuthError"),
                    "401": {
                        **_error("Client authentication failed", "OAuthError"),
                        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    },
                    "413": _error("The body exceeds the size limit"),
                    "429": {
                        **_error("Too many failed client authentications (RFC 6585 §4)", "OAuthError"),
                        "headers": {"Retry-After": {"schema": {"type": "string"}}},
                    },
                    "503": {
                        **_error("Busy checking older secrets; try again", "OAuthError"),
                        "headers": {"Retry-After": {"schema": {"type": "string"}}},
                    },
                },
            }
        },
        "/archivist/v2/assets": {
            "get": {
                "operationId": "listAssets",
                "summary": "List assets (role guest or archivist_administrator)",
                "security": bearer_only,
                "parameters": _PAGE_PARAMS,
                "responses": {ok: {"description": "A page", "content": _json("AssetList")}, **_BAD, **_AUTH_ERRORS},
            },
            "post": {
                "operationId": "createAsset",
                "summary": "Create an asset (role archivist_administrator)",
                "security": bearer_only,
                "requestBody": {"required": True, "content": _json("AssetCreate")},
                "responses": {
                    ok: {"description": "The new asset", "content": _json("Asset")},
                    **_BODY_ERRORS,
                    **_AUTH_ERRORS,
                },
            },
        },
        "/archivist/v2/assets/{uuid}": {
            "get": {
                "operationId": "getAsset",
                "security": bearer_only,
                "parameters": [_uuid_param("uuid")],
                "responses": {
                    ok: {"description": "The asset", "content": _json("Asset")},
                    **_NOT_FOUND,
                    **_AUTH_ERRORS,
                },
            }
        },
        "/archivist/iam/v1/applications": {
            "get": {
                "operationId": "listApplications",
                "summary": "List app registrations (root)",
                "security": bearer_only,
                "parameters": [
                    *_PAGE_PARAMS,
                    {
                        "name": "display_name",
                        "in": "query",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NON_BLANK},
                    },
                ],
                "responses": {
                    ok: {"description": "A page", "content": _json("ApplicationList")},
                    **_BAD,
                    **_AUTH_ERRORS,
                },
            },
            "post": {
                "operationId": "createApplication",
                "summary": "Create an app registration; the secret is shown once (root)",
                "security": bearer_only,
                "requestBody": {"required": True, "content": _json("ApplicationCreate")},
                "responses": {
                    ok: {"description": "The registration with its secret", "content": _json("Application")},
                    **_BODY_ERRORS,
                    **_AUTH_ERRORS,
                },
            },
        },
        "/archivist/iam/v1/applications/{uuid}": {
            "get": {
                "operationId": "getApplication",
                "security": bearer_only,
                "parameters": [_uuid_param("uuid")],
                "responses": {
                    ok: {"description": "The registration", "content": _json("Application")},
                    **_NOT_FOUND,
                    **_AUTH_ERRORS,
                },
            },
            "delete": {
                "operationId": "deleteApplication",
                "security": bearer_only,
                "parameters": [_uuid_param("uuid")],
                "responses": {ok: {"description": "Deleted", "content": _json("Empty")}, **_NOT_FOUND, **_AUTH_ERRORS},
            },
        },
        "/archivist/iam/v1/applications/{uuid}:regenerate-secret": {
            "post": {
                "operationId": "regenerateSecret",
                "summary": "Replace the registration's secret; the new one is shown once (root)",
                "security": bearer_only,
                "parameters": [_uuid_param("uuid")],
                "responses": {
                    ok: {"description": "The registration with its new secret", "content": _json("Application")},
                    **_NOT_FOUND,
                    **_AUTH_ERRORS,
                },
            }
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document for this instance's URLs."""
    config = current_app.config
    token_url = config["EXAMPLE_ISSUER"] + "/token"
    paths = _paths(ISSUER_PATH + "/token")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flask-ccguard example asset API",
            "version": "1.0.0",
            "description": "An RKVST-shaped asset API and its app-registration issuer.",
        },
        "servers": [{"url": config["EXAMPLE_BASE_URL"]}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "oauth2": {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": {}}}},
                "basicClient": {"type": "http", "scheme": "basic", "description": "client_secret_basic"},
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    return document()
