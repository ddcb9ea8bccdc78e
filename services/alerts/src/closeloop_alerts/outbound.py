"""SSRF guard for owner-configured URLs: only public addresses, unless explicitly allowed.

Before every request the host is resolved and **every** address it resolves to must be
globally routable (no private, loopback, link-local, CGNAT, multicast, reserved or
unspecified address: ``ipaddress``'s ``is_global``). The request then goes to the checked
address itself (the host name stays in ``Host`` and in TLS SNI/verification), so a DNS
answer that changes between check and connect (DNS rebinding) cannot redirect it.
Redirects are never followed.

Host names are resolved once per request, by one resolver. Numeric hosts in the forms
``inet_aton`` accepts (``2130706433``, ``0177.0.0.1``, ``0x7f.1``) are read as the
address they denote before any DNS lookup, so their meaning does not depend on the
resolver. An IPv6 address that embeds an IPv4 one (``::ffff:a.b.c.d``, NAT64
``64:ff9b::a.b.c.d``, 6to4 ``2002:AABB:CCDD::``) is judged by the embedded address too.

``CLOSELOOP_OUTBOUND_ALLOWLIST`` (comma-separated) lets internal targets through: host
names (``hooks.corp.example``), ``*.suffix`` patterns, IP addresses or CIDRs
(``10.20.0.0/16``, ``127.0.0.1``). A host name entry allows whatever it resolves to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedURL(ValueError):
    """The URL may not be called (scheme, private address, unresolvable)."""


class UnresolvableHost(BlockedURL):
    """The host has no address right now (it may have one later)."""


# host, port -> every address the name resolves to
Resolver = Callable[[str, int], Awaitable[list["IPAddress"]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# What inet_aton reads as an IPv4 address: one to four parts, decimal, octal or hex.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


@dataclass(frozen=True)
class Allowlist:
    hosts: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, entries: Sequence[str]) -> Allowlist:
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[Network] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("*."):
                suffixes.append(entry[1:])
            else:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(suffixes), tuple(networks))

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.hosts or any(host.endswith(suffix) for suffix in self.suffixes)

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not is_public(embedded):
            return False
        if address.ipv4_mapped is not None:
            return True  # judged entirely by the IPv4 address above
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> IPAddress | None:
    """The address a numeric host denotes (dotted, or inet_aton's decimal/octal/hex forms)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            # Out of range (e.g. 4294967296): not an address, and no name either.
            raise BlockedURL(f"{host!r} is not a valid address") from None
    return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UnresolvableHost(f"cannot resolve host: {error.strerror}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvableHost("the host resolves to no address")
    return addresses


async def check_url(url: str, allowlist: Allowlist, resolver: Resolver = resolve) -> IPAddress:
    """The address to connect to for ``url``; raises :class:`BlockedURL` if it may not be.

    The host is resolved exactly once, here; callers connect to the address returned."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BlockedURL(f"scheme {parts.scheme!r} is not allowed (http or https only)")
    host = parts.hostname
    if not host:
        raise BlockedURL("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BlockedURL("the URL's port is not valid") from None
    literal = literal_address(host)
    addresses = [literal] if literal is not None else await resolver(host, port)
    if allowlist.allows_host(host):
        return addresses[0]
    for address in addresses:
        if not is_public(address) and not allowlist.allows_address(address):
            raise BlockedURL(
                f"{host} resolves to non-public address {address}; "
                "add it to CLOSELOOP_OUTBOUND_ALLOWLIST if it is meant to be reached"
            )
    return addresses[0]


async def pinned_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    allowlist: Allowlist,
    *,
    content: bytes,
    headers: dict[str, str],
    resolver: Resolver = resolve,
) -> httpx.Request:
    """A request to the checked address of ``url`` (Host and TLS name stay the host name)."""
    address = await check_url(url, allowlist, resolver)
    original = httpx.URL(url)
    pinned = original.copy_with(host=str(address))
    request = client.build_request(
        method, pinned, content=content, headers={**headers, "host": original.netloc.decode()}
    )
    if original.scheme == "https":
        request.extensions["sni_hostname"] = original.host
    return request
