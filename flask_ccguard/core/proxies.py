"""Trusted proxies: which immediate peers may speak for the client in headers.

A header such as ``X-Forwarded-Client-Cert`` is only as trustworthy as the
peer that sent it: any client can send it itself. So a forwarded value is read
only when the request's immediate peer (the WSGI ``REMOTE_ADDR``) lies in one
of the configured addresses or networks (RFC 9440 §4, RFC 8705 §3 behind a
TLS-terminating proxy).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Union

from .errors import ConfigurationError

__all__ = ["Network", "is_trusted_peer", "parse_trusted_proxies"]

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_ADDRESS_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network)
# Trusting every address would let any client forge the forwarded headers.
_EVERYONE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def parse_trusted_proxies(value: object, option: str = "CCGUARD_TRUSTED_PROXIES") -> tuple[Network, ...]:
    """Check and parse a list of proxy addresses or networks, at start-up.

    :param value: ``None`` or an iterable of strings such as ``"10.0.0.7"``,
        ``"10.0.0.0/8"``, ``"::1"`` or ``"fd00::/8"`` (or :mod:`ipaddress` objects).
    :param option: the option name used in error messages.
    :raises ConfigurationError: naming ``option`` and the fix, for a bare
        string, an unparsable entry, a network with host bits set, or one
        that matches every address.
    """
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"{option} must be a list of addresses or networks, such as ['10.0.0.0/8'], not {value!r}."
        )
    networks: list[Network] = []
    for entry in value:
        try:
            # An int would parse too (10 -> 0.0.0.10/32): only text or ipaddress objects.
            if not isinstance(entry, (str, *_ADDRESS_TYPES)):
                raise TypeError(entry)
            network = ipaddress.ip_network(entry.strip() if isinstance(entry, str) else entry)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"{option} holds {entry!r}, which is not an IP address or network; "
                "use entries such as '10.0.0.7' or '10.0.0.0/8' (host bits of a network must be zero)."
            ) from None
        if network in _EVERYONE:
            raise ConfigurationError(
                f"{option} holds {entry!r}, which trusts every peer, so any client could forge "
                "forwarded headers; list only your proxies' addresses or networks."
            )
        networks.append(network)
    return tuple(networks)


def is_trusted_peer(remote_addr: object, networks: tuple[Network, ...]) -> bool:
    """Whether ``remote_addr`` (the immediate peer) lies in one of ``networks``.

    An IPv4-mapped IPv6 peer (``::ffff:10.0.0.7``, as dual-stack sockets
    report) is matched as its IPv4 address; a zone index (``fe80::1%eth0``,
    parsed since Python 3.9) does not affect matching; anything unparsable
    is not trusted.
    """
    if not networks or not isinstance(remote_addr, str) or not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # ``in`` is False across versions, so mixed lists need no special case.
    return any(address in network for network in networks)
