"""App Registrations API ``/archivist/iam/v1/applications`` (root role only).

Create, list, get, delete and ``:regenerate-secret``, with RKVST's shapes.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, current_app, request

from . import registrations
from .db import get_db
from .validation import ApiError, check_query, json_object, next_page_token, page_request

#: Every endpoint here needs a root registration's token: create_app calls
#: guard.protect(bp, roles=[ROOT_ROLE]), which `flask ccguard routes` shows.
bp = Blueprint("applications", __name__, url_prefix="/archivist/iam/v1/applications")


def _tenant() -> str:
    return str(current_app.config["EXAMPLE_TENANT"])


def _not_found() -> ApiError:
    return ApiError(404, "no such application")


@bp.post("")
def create_application() -> dict[str, Any]:
    check_query(())
    body = json_object({"display_name", "custom_claims", "roles"}, required={"display_name"})
    display_name = registrations.check_display_name(body["display_name"])
    claims = registrations.check_custom_claims(body.get("custom_claims", {}))
    roles = registrations.check_roles(body.get("roles", [registrations.GUEST_ROLE]))
    return registrations.create(get_db(), _tenant(), display_name, claims, roles)


@bp.get("")
def list_applications() -> dict[str, Any]:
    check_query(("page_size", "page_token", "display_name"))
    size, after, filters = page_request()
    display_name = request.args.get("display_name", filters.get("display_name"))
    if display_name is not None:
        registrations.check_display_name(display_name)
        filters = {"display_name": display_name}
    page, last = registrations.list_page(get_db(), _tenant(), size, after, display_name)
    token = "" if last is None else next_page_token(size, last, filters)
    return {"applications": page, "next_page_token": token}


@bp.get("/<uuid:app_id>")
def get_application(app_id: uuid.UUID) -> dict[str, Any]:
    check_query(())
    record = registrations.get(get_db(), _tenant(), str(app_id))
    if record is None:
        raise _not_found()
    return record


@bp.delete("/<uuid:app_id>")
def delete_application(app_id: uuid.UUID) -> dict[str, Any]:
    check_query(())
    if not registrations.delete(get_db(), str(app_id)):
        raise _not_found()
    return {}


@bp.post("/<uuid:app_id>:regenerate-secret")
def regenerate_secret(app_id: uuid.UUID) -> dict[str, Any]:
    check_query(())
    record = registrations.regenerate_secret(get_db(), _tenant(), str(app_id))
    if record is None:
        raise _not_found()
    return record
