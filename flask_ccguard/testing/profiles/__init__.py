"""Issuer profiles for :class:`~flask_ccguard.testing.TestIssuer`: local look-alikes of real identity providers.

``profile_issuer(name)`` builds the subclass registered here (a plain
factory: :class:`TestIssuer` itself knows nothing of profiles). Each one
serves the provider's discovery and key paths, shapes its tokens' header and
claims as the provider documents them (see ``issuers.md``), and, for the
providers that hand out opaque tokens, an RFC 7662 introspection endpoint.
"""

from __future__ import annotations

from typing import Any, Literal, overload

from .azure import AzureV1Issuer, AzureV2Issuer
from .base import ProfileIssuer
from .providers import AidboxIssuer, DuendeIssuer, IBMVerifyIssuer, RKVSTIssuer

__all__ = [
    "PROFILES",
    "AidboxIssuer",
    "AzureV1Issuer",
    "AzureV2Issuer",
    "DuendeIssuer",
    "IBMVerifyIssuer",
    "ProfileIssuer",
    "RKVSTIssuer",
    "profile_class",
    "profile_issuer",
]

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


@overload
def profile_issuer(name: Literal["azure_v1"], **kwargs: Any) -> AzureV1Issuer: ...
@overload
def profile_issuer(name: Literal["azure_v2"], **kwargs: Any) -> AzureV2Issuer: ...
@overload
def profile_issuer(name: Literal["ibm_verify"], **kwargs: Any) -> IBMVerifyIssuer: ...
@overload
def profile_issuer(name: Literal["duende"], **kwargs: Any) -> DuendeIssuer: ...
@overload
def profile_issuer(name: str, **kwargs: Any) -> ProfileIssuer: ...


def profile_issuer(name: str, **kwargs: Any) -> ProfileIssuer:
    """A :class:`~flask_ccguard.testing.TestIssuer` that mimics identity provider ``name``.

    ``azure_v1``, ``azure_v2``, ``rkvst``, ``ibm_verify``, ``aidbox`` or
    ``duende``; ``kwargs`` go to the profile's constructor (e.g.
    ``tenant_id=`` for Entra, ``start=False``). Use it as a context manager
    like any TestIssuer::

        with profile_issuer("azure_v2", tenant_id=TENANT) as entra:
            token = entra.mint(roles=["Assets.Read"])

    :raises ValueError: for an unknown profile.
    """
    return profile_class(name)(**kwargs)
