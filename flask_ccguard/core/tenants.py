"""Multi-tenant issuer templates such as Entra ID's ``https://login.microsoftonline.com/{tenantid}/v2.0``.

Microsoft's rule for validating tokens against a template issuer (the
``issuer`` of the ``common`` / ``organizations`` metadata): the token's
``tid`` substituted into ``{tenantid}`` must give exactly its ``iss``; ``tid``
must be a GUID; and the first path segment of ``iss`` must be that ``tid``.
An optional allowlist narrows the tenants accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .fetch.http import check_url

__all__ = ["PLACEHOLDER", "IssuerTemplate", "is_guid"]

PLACEHOLDER = "{tenantid}"
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SAMPLE_TENANT = "00000000-0000-0000-0000-000000000000"


def is_guid(value: Any) -> bool:
    """True for a GUID in its 8-4-4-4-12 hexadecimal form."""
    return isinstance(value, str) and _GUID.fullmatch(value) is not None


class IssuerTemplate:
    """An issuer identifier with one ``{tenantid}`` placeholder.

    :param template: e.g. ``https://sts.windows.net/{tenantid}/``.
    :param tenants: the allowed tenant ids (lower case), or None for any.
    """

    __slots__ = ("_prefix", "_suffix", "template", "tenants")

    def __init__(self, template: str, tenants: frozenset[str] | None) -> None:
        self.template = template
        self._prefix, _, self._suffix = template.partition(PLACEHOLDER)
        self.tenants = tenants

    @classmethod
    def parse(cls, issuer: str, tenants: Any, label: str, tenants_name: str) -> IssuerTemplate | None:
        """The template of ``issuer``, or None for a fixed issuer.

        :raises ConfigurationError: for a malformed template or allowlist, or
            an allowlist on a fixed issuer.
        """
        if PLACEHOLDER not in issuer:
            if tenants is not None:
                raise ConfigurationError(
                    f"{tenants_name} only applies to an issuer template containing {PLACEHOLDER}, "
                    f"such as 'https://login.microsoftonline.com/{PLACEHOLDER}/v2.0'."
                )
            return None
        if issuer.count(PLACEHOLDER) != 1:
            raise ConfigurationError(f"{label} {issuer!r} must contain {PLACEHOLDER} exactly once.")
        sample = issuer.replace(PLACEHOLDER, _SAMPLE_TENANT)
        check_url(sample, label)
        if _first_segment(sample) != _SAMPLE_TENANT:
            # Microsoft's rule ties tid to the first path segment of iss.
            raise ConfigurationError(
                f"{label} {issuer!r}: {PLACEHOLDER} must be the first path segment of the issuer, "
                f"as in 'https://sts.windows.net/{PLACEHOLDER}/'."
            )
        allowed: frozenset[str] | None = None
        if tenants is not None:
            if isinstance(tenants, str) or not isinstance(tenants, Iterable):
                raise ConfigurationError(f"{tenants_name} must be a list of tenant ids (GUIDs).")
            items = list(tenants)
            if not items or not all(is_guid(t) for t in items):
                raise ConfigurationError(
                    f"{tenants_name} must be a non-empty list of tenant ids (GUIDs such as "
                    f"'{_SAMPLE_TENANT}'); leave it out to accept every tenant."
                )
            allowed = frozenset(t.lower() for t in items)
        return cls(issuer, allowed)

    def covers(self, iss: str) -> bool:
        """True if ``iss`` has this template's shape, whatever stands for the tenant."""
        return iss.startswith(self._prefix) and iss.endswith(self._suffix)

    def matches(self, iss: str, tid: Any) -> bool:
        """True if a token with these ``iss`` and ``tid`` claims belongs to this template."""
        if not is_guid(tid):
            return False
        assert isinstance(tid, str)
        if self.tenants is not None and tid.lower() not in self.tenants:
            return False
        if iss != self._prefix + tid + self._suffix:
            return False
        # Implied by the exact match, since parse() puts the placeholder in the
        # first segment; kept as Microsoft states the rule, in case that changes.
        return _first_segment(iss) == tid

    def __repr__(self) -> str:
        return f"IssuerTemplate({self.template!r}, tenants={sorted(self.tenants) if self.tenants else None})"


def _first_segment(url: str) -> str:
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    return path.lstrip("/").split("/", 1)[0]
