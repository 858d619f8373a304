"""App registrations: storage, hashed secrets, and client authentication.

Shaped like RKVST's App Registrations API: ``applications/<uuid>`` with
``display_name``, ``client_id``, ``tenant_id``, ``credentials`` and
``custom_claims``. A secret is shown once, at creation or regeneration, and
stored only as a hash (see :mod:`example_app.client_secrets` for which, and
why), compared in constant time.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
import uuid
from typing import Any

from flask_ccguard.core.claims import ID_TOKEN_CLAIMS

from .client_secrets import DUMMY_HASH, check_secret, hash_secret, needs_rehash
from .db import transaction
from .validation import END, NAME, bad, check_text, rfc3339, string_map

ROOT_ROLE = "archivist_administrator"
GUEST_ROLE = "guest"
SECRET_LIFETIME = 365 * 24 * 3600  # RKVST's example secrets are valid for a year

#: Claim names a custom claim may not take: RFC 7519 §4.1, the claims this
#: issuer sets itself (RFC 9068 §2.2, §2.2.3.1), and OpenID Connect's
#: standard claims -- a custom claim must never be able to pose as one of
#: these -- and the ID-token claims (:data:`ID_TOKEN_CLAIMS`), taken from
#: flask_ccguard, which refuses a token with one (RFC 8725 §3.11): the issuer
#: must not mint tokens its own API refuses. Compared case-insensitively.
RESERVED_CLAIMS = ID_TOKEN_CLAIMS | frozenset(
    {
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti",
        "client_id", "scope", "scp", "roles", "groups", "entitlements", "act", "may_act", "cnf", "typ",
        "azp", "auth_time", "acr", "amr", "sid", "tid", "oid",
        "name", "given_name", "family_name", "email", "email_verified", "preferred_username",
    }
)  # fmt: skip
#: Prefixes reserved for the platform: RKVST reserves ``jit_``, DataTrails also ``arc_``.
RESERVED_PREFIXES = ("jit_", "arc_")
ROLE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}" + END)
#: A character that is not blank: not ECMA-262's \s (WhiteSpace, LineTerminator),
#: spelled out because the OpenAPI document states the rule as this pattern
#: and Python's \s differs (it takes U+001C-U+001F and U+0085, not U+FEFF).
NON_BLANK = r"[^\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


#: The custom-claim names allowed, as one pattern for the OpenAPI document:
#: a NAME that is neither reserved nor reserved-prefixed, in any case.
CUSTOM_CLAIM_PATTERN = (
    "^(?!(?:"
    + "|".join(_any_case(p) for p in RESERVED_PREFIXES)
    + ")|(?:"
    + "|".join(_any_case(n) for n in sorted(RESERVED_CLAIMS))
    + ")"
    + END
    + ")"
    + NAME.pattern[1:]
)


# -- validation ------------------------------------------------------------------------


def check_custom_claims(value: Any) -> dict[str, str]:
    """Custom claims: string to string, no reserved names (400 names the claim)."""
    claims = string_map(value, "custom_claims", max_items=32)
    for name in claims:
        lowered = name.lower()
        if lowered.startswith(RESERVED_PREFIXES):
            bad(f"custom claim {name!r} is not allowed: names starting with 'jit_' or 'arc_' are reserved")
        if lowered in ID_TOKEN_CLAIMS:
            bad(f"custom claim {name!r} is not allowed: it marks an OpenID Connect ID token, which the API refuses")
        if lowered in RESERVED_CLAIMS:
            bad(f"custom claim {name!r} is not allowed: it is a registered JWT claim name")
    return claims


def check_roles(value: Any) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= 16:
        bad("'roles' must be a list of 1 to 16 role names")
    for role in value:
        if not isinstance(role, str) or not ROLE.match(role):
            bad(f"'roles' entries must match {ROLE.pattern}")
    return list(dict.fromkeys(value))


def check_display_name(value: Any) -> str:
    # NON_BLANK, not str.strip() or re's \S: the OpenAPI document states the
    # rule as that pattern, and those disagree with it on U+001C-U+001F.
    if not isinstance(value, str) or not re.search(NON_BLANK, value) or len(value) > 200:
        bad("'display_name' must be a non-blank string of at most 200 characters")
    return check_text(value, "'display_name'")


# -- storage ---------------------------------------------------------------------------


def _record(conn: sqlite3.Connection, row: sqlite3.Row, tenant: str, secret: str | None = None) -> dict[str, Any]:
    creds = conn.execute(
        "SELECT valid_from, valid_until FROM credentials WHERE application_id = ? ORDER BY id", (row["id"],)
    ).fetchall()
    credentials: list[dict[str, Any]] = []
    for cred in creds:
        entry: dict[str, Any] = {"valid_from": rfc3339(cred["valid_from"]), "valid_until": rfc3339(cred["valid_until"])}
        if secret is not None:
            entry = {"secret": secret, **entry}
        credentials.append(entry)
    return {
        "identity": f"applications/{row['id']}",
        "display_name": row["display_name"],
        "client_id": row["id"],
        "tenant_id": tenant,
        "credentials": credentials,
        "custom_claims": json.loads(row["custom_claims"]),
        "roles": json.loads(row["roles"]),
    }


def _new_credential(conn: sqlite3.Connection, app_id: str, now: float) -> str:
    secret = secrets.token_hex(32)  # 256 bits, hex like RKVST's secrets
    conn.execute(
        "INSERT INTO credentials (application_id, secret_hash, valid_from, valid_until) VALUES (?, ?, ?, ?)",
        (app_id, hash_secret(secret), now, now + SECRET_LIFETIME),
    )
    return secret


def create(
    conn: sqlite3.Connection, tenant: str, display_name: str, custom_claims: dict[str, str], roles: list[str]
) -> dict[str, Any]:
    """Create a registration and its first secret; the record shows the secret."""
    app_id = str(uuid.uuid4())
    now = time.time()
    with transaction(conn):
        conn.execute(
            "INSERT INTO applications (id, display_name, custom_claims, roles, created_at) VALUES (?, ?, ?, ?, ?)",
            (app_id, display_name, json.dumps(custom_claims), json.dumps(roles), now),
        )
        secret = _new_credential(conn, app_id, now)
        row = conn.execute("SELECT * FROM applications WHERE id = ?", (app_id,)).fetchone()
        return _record(conn, row, tenant, secret)


def get(conn: sqlite3.Connection, tenant: str, app_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM applications WHERE id = ?", (app_id,)).fetchone()
    return None if row is None else _record(conn, row, tenant)


def list_page(
    conn: sqlite3.Connection, tenant: str, size: int, after: int, display_name: str | None
) -> tuple[list[dict[str, Any]], int | None]:
    """One page, and the last ``seq`` when there are more."""
    query = "SELECT * FROM applications WHERE seq > ?"
    params: list[Any] = [after]
    if display_name is not None:
        query += " AND display_name = ?"
        params.append(display_name)
    rows = conn.execute(query + " ORDER BY seq LIMIT ?", [*params, size + 1]).fetchall()
    more = len(rows) > size
    rows = rows[:size]
    return [_record(conn, row, tenant) for row in rows], (rows[-1]["seq"] if more else None)


def delete(conn: sqlite3.Connection, app_id: str) -> bool:
    with transaction(conn):
        return conn.execute("DELETE FROM applications WHERE id = ?", (app_id,)).rowcount > 0


def regenerate_secret(conn: sqlite3.Connection, tenant: str, app_id: str) -> dict[str, Any] | None:
    """Replace the registration's credentials by a new secret (shown once)."""
    with transaction(conn):
        row = conn.execute("SELECT * FROM applications WHERE id = ?", (app_id,)).fetchone()
        if row is None:
            return None
        conn.execute("DELETE FROM credentials WHERE application_id = ?", (app_id,))
        secret = _new_credential(conn, app_id, time.time())
        return _record(conn, row, tenant, secret)


def authenticate(conn: sqlite3.Connection, client_id: str, secret: str) -> sqlite3.Row | None:
    """The registration if ``secret`` is one of its currently valid secrets.

    An unknown client is refused after one SHA-256 compare against a dummy
    hash, never the KDF, so made-up client ids cost the endpoint nothing. A
    legacy (scrypt) hash that matches is replaced by its SHA-256 form.

    :raises client_secrets.SecretCheckBusy: if a legacy hash cannot be checked now.
    """
    try:
        app_id = str(uuid.UUID(client_id))
    except ValueError:
        app_id = ""
    row = conn.execute("SELECT * FROM applications WHERE id = ?", (app_id,)).fetchone() if app_id == client_id else None
    now = time.time()
    stored: list[sqlite3.Row] = []
    if row is not None:
        # Expired (or not yet valid) credentials cannot get tokens.
        stored = conn.execute(
            "SELECT id, secret_hash FROM credentials WHERE application_id = ? AND valid_from <= ? AND valid_until > ?",
            (row["id"], now, now),
        ).fetchall()
    if not stored:
        check_secret(secret, DUMMY_HASH)  # the same work as a known client's check
        return None
    matched = None
    for cred in stored:
        # Every credential is checked: no early exit that times which one matched.
        if check_secret(secret, cred["secret_hash"]):
            matched = cred
    if matched is None:
        return None
    if needs_rehash(matched["secret_hash"]):
        with transaction(conn):
            conn.execute(
                "UPDATE credentials SET secret_hash = ? WHERE id = ? AND secret_hash = ?",
                (hash_secret(secret), matched["id"], matched["secret_hash"]),
            )
    return row


def token_claims(row: sqlite3.Row) -> tuple[list[str], dict[str, str]]:
    """(roles, custom claims) that a registration's tokens carry."""
    return json.loads(row["roles"]), json.loads(row["custom_claims"])


__all__ = [
    "GUEST_ROLE",
    "NAME",
    "NON_BLANK",
    "ROOT_ROLE",
    "authenticate",
    "check_custom_claims",
    "check_display_name",
    "check_roles",
    "create",
    "delete",
    "get",
    "list_page",
    "regenerate_secret",
    "token_claims",
]
