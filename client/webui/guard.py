"""Whom the web view answers (SPEC §10): only requests addressed to it by name, so a page on
another site that rebinds its DNS name to 127.0.0.1 reads nothing; and state-changing requests
only from its own page (JSON, with the page's Origin or the token written into the page), so no
other site can start or steer runs through a visitor's browser.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable, Optional

from aiohttp import web

TOKEN_HEADER = "X-Tflow-Token"
"""The header the page sends its token in (read from `<meta name="tflow-token">`)."""
TOKEN_PLACEHOLDER = "__TFLOW_TOKEN__"
"""Where index.html takes the server's token."""
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RECENT_REFUSALS = 100
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # no other page frames this one to have its buttons clicked
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "Referrer-Policy": "same-origin",
}

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    """A request the guard turned away, as reported."""

    method: str
    path: str
    host: str
    origin: Optional[str]
    status: int
    reason: str

    def __str__(self) -> str:
        """One line for the terminal: what the sender chose (path, Host, Origin) printable and short."""
        origin = f", Origin {self.origin}" if self.origin else ""
        return _printable(f"tflow webui refused {self.method} {self.path} (Host {self.host or '-'}{origin}): {self.reason}")


@dataclass
class Guard:
    """The served addresses, the page's token, and the requests refused so far."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    hosts: frozenset[str] = frozenset()
    """Accepted `Host` values (lower case), set once the server is bound (`serve_at`)."""
    refusals: deque[Refusal] = field(default_factory=lambda: deque(maxlen=RECENT_REFUSALS))
    refused: int = 0
    report: Callable[[str], None] = _log.warning

    def serve_at(self, bind_host: str, ports: Iterable[int]) -> None:
        self.hosts = allowed_hosts(bind_host, ports)

    def refusal(self, request: web.Request) -> Optional[Refusal]:
        """Why `request` is not answered; None when it is."""
        host = request.headers.get("Host", "").strip().lower()
        origin = request.headers.get("Origin")
        refuse = lambda status, reason: Refusal(request.method, request.path, host, origin, status, reason)  # noqa: E731
        if host not in self.hosts:
            served = ", ".join(sorted(self.hosts))
            return refuse(403, f"the Host header names {host or 'nothing'!r}, not this web view ({served}); "
                               "open the page at one of those addresses, or give `tflow webui --host` the name you use")
        if request.method in SAFE_METHODS:
            return None
        if origin is not None and origin.strip().lower() != f"http://{host}":
            return refuse(403, f"a request from another site ({origin}) cannot change anything here")
        if origin is None and not secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), self.token):
            return refuse(403, f"a request that changes something needs this page's Origin or its {TOKEN_HEADER} header")
        if request.content_type != "application/json":
            return refuse(415, f"expected Content-Type application/json, got {request.content_type or 'none'}")
        return None

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        refusal = self.refusal(request)
        if refusal is None:
            return await handler(request)
        self.refused += 1
        self.refusals.append(refusal)
        self.report(str(refusal))
        return web.json_response({"problems": [refusal.reason]}, status=refusal.status)


def _printable(text: str, limit: int = 400) -> str:
    """No terminal escapes or line breaks from a request's headers."""
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def allowed_hosts(bind_host: str, ports: Iterable[int]) -> frozenset[str]:
    """`name:port` for the loopback names and the bound host (IPv6 in brackets), for each bound
    port; the bare names too on port 80, where browsers leave the port out."""
    ports, names = set(ports), set(LOOPBACK_NAMES)
    if bind_host not in WILDCARD_HOSTS:
        names.add(url_host(bind_host).lower())
    hosts = {f"{name}:{port}" for name in names for port in ports}
    if 80 in ports:
        hosts |= names
    return frozenset(hosts)


def url_host(bind_host: str) -> str:
    """How a URL names the host the server is bound to: wildcards as the loopback address."""
    if bind_host in WILDCARD_HOSTS:
        return "[::1]" if bind_host == "::" else "127.0.0.1"
    return f"[{bind_host}]" if ":" in bind_host and not bind_host.startswith("[") else bind_host


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response (pages, JSON, event streams, refusals) says: no sniffing, no framing."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
