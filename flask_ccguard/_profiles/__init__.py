"""Issuer profiles for :class:`~flask_ccguard.testing.TestIssuer`: local look-alikes of real identity providers.

``TestIssuer(profile=name)`` builds the subclass registered here. Each one
serves the provider's discovery and key paths, shapes its tokens' header and
claims as the provider documents them (see ``issuers.md``), and, for the
providers that hand out opaque tokens, an RFC 7662 introspection endpoint.
"""

from __future__ import annotations

from .azure import AzureV1Issuer, AzureV2Issuer
from .base import ProfileIssuer
from .providers import AidboxIssuer, DuendeIssuer, IBMVerifyIssuer, RKVSTIssuer

__all__ = ["PROFILES", "ProfileIssuer", "profile_class"]

#: profile name -> class.
PROFILES: dict[str, type[ProfileIssuer]] = {
    cls.profile_name: cls
    for cls in (AzureV1Issuer, AzureV2Issuer, RKVSTIssuer, IBMVerifyIssuer, AidboxIssuer, DuendeIssuer)
}


def profile_class(name: str) -> type[ProfileIssuer]:
    """The :class:`ProfileIssuer` subclass of profile ``name``.

    :raises ValueError: for an unknown profile.
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown TestIssuer profile {name!r}; choose from {sorted(PROFILES)}") from None
