"""The connections under :class:`~flask_ccguard.core.fetch.http.HTTPClient`: every socket of a fetch is its deadline's.

A fetch runs in a worker thread so that the caller has its answer by the
deadline; this module makes sure the worker, and its connection, end then too.
Each connection registers its socket with the fetch's :class:`Watch` the
moment the socket exists (before the request is sent, so a server that
trickles its status line or headers is covered, not only one that trickles
its body), and again whenever a pooled connection is reused. When the
deadline passes the watch shuts every socket down, which wakes the blocked
read and lets the worker finish.

The adapter is CacheControl's (RFC 9111), except that a ``304`` revalidation
is reported as the issuer request it is.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterator
from typing import Any

import requests
from cachecontrol.adapter import CacheControlAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

__all__ = ["Adapter", "NotLoopback", "Watch", "is_loopback_address", "watching"]

_local = threading.local()


class Watch:
    """The deadline of one fetch and the sockets to shut when it passes.

    It holds a duplicate of each socket's descriptor: shutting that down ends
    the TCP connection whatever object wraps it (TLS included, even during the
    handshake), and a descriptor the fetch closed and the process reused can
    never be touched by mistake.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._socks: list[socket.socket] = []
        self._aborted = False
        self._released = False
        self._lock = threading.Lock()

    @property
    def aborted(self) -> bool:
        return self._aborted

    def attach(self, sock: Any) -> None:
        """Watch ``sock`` (a plain or TLS socket) until :meth:`release`."""
        try:
            dup = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except (OSError, ValueError, AttributeError):
            return  # closed or detached: nothing left to shut
        with self._lock:
            if self._released:
                dup.close()
                return
            self._socks.append(dup)
            if self._aborted:
                _shutdown(dup)

    def abort(self) -> None:
        """The deadline passed: shut every connection of the fetch down."""
        with self._lock:
            self._aborted = True
            for sock in self._socks:
                _shutdown(sock)

    def release(self) -> None:
        """The fetch is over: close our duplicates (its connections stay as they are)."""
        with self._lock:
            self._released = True
            for sock in self._socks:
                sock.close()
            self._socks.clear()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def watching(watch: Watch) -> Iterator[None]:
    """Give the connections this thread opens or reuses to ``watch``."""
    _local.watch = watch
    try:
        yield
    finally:
        _local.watch = None
        watch.release()


def _register(sock: Any) -> None:
    watch: Watch | None = getattr(_local, "watch", None)
    if watch is not None and sock is not None:
        watch.attach(sock)


def is_loopback_address(address: str) -> bool:
    """True for an IP address in 127.0.0.0/8 or ``::1`` (an IPv4-mapped one included)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class NotLoopback(NewConnectionError):
    """A plain-``http`` connection reached a peer that is not loopback."""


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        # Plain http is allowed to loopback hosts only; the name was checked
        # before the request, but it may have resolved elsewhere since (DNS
        # rebinding), so the address actually connected to decides.
        try:
            peer = str(sock.getpeername()[0])
        except OSError:
            peer = ""
        if not is_loopback_address(peer):
            sock.close()
            raise NotLoopback(self, "plain http reached a host that is not loopback; refused")
        _register(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self.sock)  # a pooled connection, reused for this fetch
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _register(sock)  # before the TLS handshake, which a server can trickle too
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self.sock)
        super().request(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class Adapter(CacheControlAdapter):
    """CacheControl's adapter on watched connections, telling a revalidation from a cache hit.

    CacheControl marks a ``304 Not Modified`` answer to its conditional
    request (``If-None-Match``/``If-Modified-Since``, RFC 9110 §13.1) as
    ``from_cache``; but the issuer *was* contacted. The key set's cooldown
    spares only answers that cost the issuer nothing, so we record the truth
    as ``ccguard_contacted``.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_response(
        self, request: Any, response: Any, from_cache: bool = False, cacheable_methods: Any = None
    ) -> requests.Response:
        resp = super().build_response(request, response, from_cache, cacheable_methods)
        # from_cache is True only on the path that sent nothing; a 304 comes
        # through here with False, before CacheControl swaps in its stored copy.
        resp.ccguard_contacted = not from_cache  # type: ignore[attr-defined]
        return resp
