"""What the validator knows of an HTTP request: method, URL, headers, client certificate.

Framework-free, so the sender-constraint steps of the pipeline (DPoP, RFC 9449 §4.3;
mTLS, RFC 8705 §3) can read the request without importing Flask. The Flask layer fills
one per request (:func:`flask_ccguard.http_request.describe`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

__all__ = ["HTTPRequest", "Headers"]


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive view of request headers (RFC 9110 §5.1).

    A header sent several times reads as its values joined by ``", "``
    (RFC 9110 §5.3), except that :meth:`get_all` gives them one by one.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        folded: dict[str, tuple[str, list[str]]] = {}
        for name, value in pairs:
            entry = folded.setdefault(name.lower(), (name, []))
            entry[1].append(value)
        self._items = folded

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._items[name.lower()][1])

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of header ``name``, in the order received (empty if absent)."""
        entry = self._items.get(name.lower())
        return tuple(entry[1]) if entry is not None else ()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (entry[0] for entry in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        # Header values may hold credentials: never shown.
        return f"Headers({sorted(self)!r})"


@dataclass(frozen=True)
class HTTPRequest:
    """One HTTP request as the client sent it.

    :param method: the request method, upper case (``"GET"``).
    :param url: the absolute URL the client addressed (scheme, host, path, query),
        as needed for DPoP's ``htu`` (RFC 9449 §4.3); built by the framework layer
        from its trusted view of the public base URL, never from ``Host`` alone.
    :param headers: the request headers, read case-insensitively.
    :param client_cert: the client's TLS certificate (DER), when the server or a
        trusted proxy conveyed one (RFC 8705 §3); None otherwise.
    :param remote_addr: the peer address the server saw.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    client_cert: bytes | None = None
    remote_addr: str | None = None

    def __repr__(self) -> str:
        # The query may hold an access token (RFC 6750 §2.3): left out.
        url = self.url.split("?", 1)[0]
        return f"HTTPRequest(method={self.method!r}, url={url!r}, cert={self.client_cert is not None})"


#: A request known to carry the ``Bearer`` scheme and nothing a binding step
#: reads besides it (no certificate): the framework layer passes this one
#: object instead of describing such a request field by field, and the
#: sender-constraint step recognises it by identity.
BEARER_REQUEST = HTTPRequest(method="", url="", headers=Headers([("Authorization", "Bearer")]))
