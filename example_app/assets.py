"""Assets API ``/archivist/v2/assets``: list with paging, get, create.

Shaped like RKVST's assets v2 (identity ``assets/<uuid>``, ``behaviours``,
``attributes`` ...). Readers need ``guest`` or ``archivist_administrator``;
creating needs ``archivist_administrator``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from typing import Any

from flask import Blueprint, current_app

from flask_ccguard import current_token, require_roles

from .db import get_db, transaction
from .registrations import GUEST_ROLE, ROOT_ROLE
from .validation import END, NAME, ApiError, bad, check_query, json_object, next_page_token, page_request, rfc3339

bp = Blueprint("assets", __name__, url_prefix="/archivist/v2/assets")

PROOF_MECHANISMS = ("SIMPLE_HASH", "MERKLE_LOG")
BEHAVIOUR = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}" + END)
MAX_ATTRIBUTES = 100
MAX_VALUE_LENGTH = 4096


def _attribute_value(name: str, value: Any) -> Any:
    # RKVST's attribute union: a string, or a list of string maps (e.g. arc_attachments).
    if isinstance(value, str):
        if len(value) > MAX_VALUE_LENGTH:
            bad(f"attribute {name!r} is longer than {MAX_VALUE_LENGTH} characters")
        return value
    if isinstance(value, list) and len(value) <= 20:
        for item in value:
            if not isinstance(item, dict) or len(item) > 20:
                break
            if not all(NAME.match(k) and isinstance(v, str) and len(v) <= MAX_VALUE_LENGTH for k, v in item.items()):
                break
        else:
            return value
    raise ApiError(400, f"attribute {name!r} must be a string or a list of objects of strings")


def _check_create(body: dict[str, Any]) -> dict[str, Any]:
    behaviours = body["behaviours"]
    if not isinstance(behaviours, list) or not 1 <= len(behaviours) <= 20:
        bad("'behaviours' must be a list of 1 to 20 behaviour names")
    if not all(isinstance(b, str) and BEHAVIOUR.match(b) for b in behaviours):
        bad(f"'behaviours' entries must match {BEHAVIOUR.pattern}")
    attributes = body["attributes"]
    if not isinstance(attributes, dict) or not 1 <= len(attributes) <= MAX_ATTRIBUTES:
        bad(f"'attributes' must be an object with 1 to {MAX_ATTRIBUTES} members")
    for name, value in attributes.items():
        if not NAME.match(name):
            bad(f"attribute name {name!r} must match {NAME.pattern}")
        _attribute_value(name, value)
    proof = body.get("proof_mechanism", "SIMPLE_HASH")
    if proof not in PROOF_MECHANISMS:
        bad(f"'proof_mechanism' must be one of {', '.join(PROOF_MECHANISMS)}")
    public = body.get("public", False)
    if not isinstance(public, bool):
        bad("'public' must be true or false")
    return {
        "behaviours": list(dict.fromkeys(behaviours)),
        "attributes": attributes,
        "proof_mechanism": proof,
        "public": public,
    }


def _document(row: sqlite3.Row) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(row["document"])
    return document


@bp.get("")
@require_roles(GUEST_ROLE, ROOT_ROLE, match="any")
def list_assets() -> dict[str, Any]:
    check_query(("page_size", "page_token"))
    size, after, _ = page_request()
    rows = (
        get_db()
        .execute("SELECT seq, document FROM assets WHERE seq > ? ORDER BY seq LIMIT ?", (after, size + 1))
        .fetchall()
    )
    more = len(rows) > size
    rows = rows[:size]
    token = next_page_token(size, rows[-1]["seq"], {}) if more else ""
    # An empty string marks the last page, as in RKVST.
    return {"assets": [_document(row) for row in rows], "next_page_token": token}


@bp.get("/<uuid:asset_id>")
@require_roles(GUEST_ROLE, ROOT_ROLE, match="any")
def get_asset(asset_id: uuid.UUID) -> dict[str, Any]:
    check_query(())
    row = get_db().execute("SELECT document FROM assets WHERE id = ?", (str(asset_id),)).fetchone()
    if row is None:
        raise ApiError(404, "no such asset")
    return _document(row)


@bp.post("")
@require_roles(ROOT_ROLE)
def create_asset() -> dict[str, Any]:
    check_query(())
    body = json_object({"behaviours", "attributes", "proof_mechanism", "public"}, required=("behaviours", "attributes"))
    fields = _check_create(body)
    asset_id = str(uuid.uuid4())
    document = {
        "identity": f"assets/{asset_id}",
        **fields,
        # No ledger behind the example: an asset is confirmed when stored.
        "confirmation_status": "CONFIRMED",
        "tracked": "TRACKED",
        "at_time": rfc3339(time.time()),
        "tenant_identity": current_app.config["EXAMPLE_TENANT"],
    }
    with transaction() as conn:
        conn.execute(
            "INSERT INTO assets (id, document, created_by) VALUES (?, ?, ?)",
            (asset_id, json.dumps(document), current_token.subject or ""),
        )
    # RKVST answers a create with 200 and the asset.
    return document
