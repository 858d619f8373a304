"""The issuer registry: fixed issuers, ``{tenantid}`` templates, introspecting issuers, selection by ``iss``.

Built once from the ``issuer`` option (each entry checked by :func:`.issuers.build_issuer`).
A token's unverified ``iss`` only *selects* among configured issuers (RFC 9068 §4:
the issuer must be one the resource server trusts); nothing in the token names a
place to fetch from. Fixed issuers cost one dict lookup; templates (:mod:`.tenants`)
are tried only when it misses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Union

from .errors import ConfigurationError
from .fetch.discovery import issuer_near_miss
from .fetch.http import HTTPClient
from .issuers import IssuerEntry, build_issuer, issuer_specs

__all__ = ["IssuerRegistry", "IssuerSpec"]

log = logging.getLogger("flask_ccguard")

IssuerSpec = Union[str, Mapping[str, Any]]


class IssuerRegistry:
    """The configured issuers, and which of them a token belongs to.

    :param issuer: the ``issuer`` option: an identifier, a dict of per-issuer
        settings, or a list of them.
    :param defaults: the validator-wide values of the per-issuer options.
    :raises ConfigurationError: naming the entry at fault and the fix.
    """

    __slots__ = ("fixed", "introspecting", "templates")

    def __init__(
        self,
        issuer: IssuerSpec | Sequence[IssuerSpec],
        defaults: Mapping[str, Any],
        *,
        option_name: Callable[[str], str],
        http: HTTPClient,
        clock: Callable[[], float],
    ) -> None:
        specs = issuer_specs(issuer, option_name("issuer"))
        #: Fixed issuers by identifier.
        self.fixed: dict[str, IssuerEntry] = {}
        #: ``{tenantid}`` templates, in the configured order.
        self.templates: list[IssuerEntry] = []
        #: Issuers that introspect opaque tokens (RFC 7662), in the configured order.
        self.introspecting: list[IssuerEntry] = []
        for index, spec in enumerate(specs):
            label = (
                option_name("issuer")
                if len(specs) == 1 and isinstance(issuer, (str, Mapping))
                else f"{option_name('issuer')}[{index}]"
            )
            entry = build_issuer(spec, defaults, label, option_name=option_name, http=http, clock=clock)
            if entry.rules.issuer in self.fixed or any(t.rules.issuer == entry.rules.issuer for t in self.templates):
                raise ConfigurationError(
                    f"{label}: issuer {entry.rules.issuer!r} is configured twice; list each issuer once."
                )
            if entry.template is not None:
                self.templates.append(entry)
            else:
                self.fixed[entry.rules.issuer] = entry
            if entry.introspector is not None:
                self.introspecting.append(entry)

    @property
    def identifiers(self) -> tuple[str, ...]:
        """The configured issuer identifiers (templates as configured)."""
        return tuple(self.fixed) + tuple(t.rules.issuer for t in self.templates)

    def entries(self) -> list[IssuerEntry]:
        """Every fixed issuer and template, in that order."""
        return [*self.fixed.values(), *self.templates]

    def entry(self, issuer: str) -> IssuerEntry:
        """The settings of a configured issuer or template, by its configured identifier.

        :raises KeyError: ``issuer`` is not configured.
        """
        entry = self.fixed.get(issuer)
        if entry is None:
            entry = next((t for t in self.templates if t.rules.issuer == issuer), None)
            if entry is None:
                raise KeyError(issuer)
        return entry

    def select(self, claims: Mapping[str, Any]) -> IssuerEntry | None:
        """The settings for a token with these (unverified) claims: the fixed issuer
        named by ``iss``, else the first template that ``iss`` and ``tid`` match (its
        rules bound to that ``iss``); None if none."""
        iss = claims.get("iss")
        entry = self.fixed.get(iss) if isinstance(iss, str) else None
        if entry is None and self.templates:
            entry = self._match_template(iss, claims)
        return entry

    def log_near_miss(self, iss: Any) -> None:
        """Log (never in the response) when an unknown ``iss`` differs from a configured
        issuer only by e.g. a trailing slash; called on the refusal path only."""
        for configured in self.fixed:
            near = issuer_near_miss(iss, configured)
            if near:
                log.info("flask_ccguard: token iss differs from the configured issuer %r only by %s", configured, near)
                return

    def _match_template(self, iss: Any, claims: Mapping[str, Any]) -> IssuerEntry | None:
        if not isinstance(iss, str):
            return None
        for entry in self.templates:
            assert entry.template is not None
            if entry.template.matches(iss, claims.get("tid")):
                return IssuerEntry(
                    entry.rules.replace(issuer=iss), entry.algorithms, entry.keys, entry.token_types, entry.template
                )
        return None
