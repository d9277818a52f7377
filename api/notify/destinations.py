"""Where a webhook may send: public addresses only (server-side request forgery).

A tenant admin chooses the URL and the API process makes the request, from
inside the network: without this, a webhook could reach the loopback admin
endpoints, ClickHouse, Kafka, the cloud metadata service (169.254.169.254)
or any private host. So every address the name resolves to must be public
— not loopback, private, link-local, shared (CGNAT), multicast, reserved or
unspecified, also when wrapped in an IPv6 form (v4-mapped, 6to4, Teredo,
NAT64) — unless an operator listed its network in WEBHOOK_ALLOW_NETWORKS.

The check runs at registration and again at every delivery, and a delivery
connects to the very address that passed (``Destination.pinned_url``):
a name re-pointed at 127.0.0.1 after the check (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit, urlunsplit

Address = IPv4Address | IPv6Address
Networks = tuple[IPv4Network | IPv6Network, ...]

_NAT64 = IPv6Network("64:ff9b::/96")
# Not "global" for the IANA registry but missing from some Python versions'
# private lists: IETF protocol assignments (Oracle Cloud's metadata service
# is 192.0.0.192) and AWS's IPv6 metadata address.
_ALSO_REFUSED = (IPv4Network("192.0.0.0/24"), IPv6Network("fd00:ec2::254/128"))


class DestinationRefused(ValueError):
    pass


@dataclass(frozen=True)
class Destination:
    url: str
    hostname: str
    address: Address  # the checked address a delivery connects to

    def pinned_url(self) -> str:
        """The URL with the checked address in place of the name (the name
        still goes in Host and, over TLS, in SNI and the certificate check)."""
        u = urlsplit(self.url)
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        port = u.port or (443 if u.scheme == "https" else 80)
        return urlunsplit((u.scheme, f"{host}:{port}", u.path or "/", u.query, ""))

    def host_header(self) -> str:
        return urlsplit(self.url).netloc


def _embedded_v4(ip: Address) -> list[IPv4Address]:
    """IPv4 addresses an IPv6 one carries (and may be routed to)."""
    if isinstance(ip, IPv4Address):
        return []
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64:
        found.append(IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in found if v4 is not None]


def is_public(ip: Address) -> bool:
    candidates = [ip, *_embedded_v4(ip)]
    return all(
        a.is_global
        and not a.is_multicast
        and not any(a in net for net in _ALSO_REFUSED if net.version == a.version)
        for a in candidates
    )


def resolve(hostname: str, port: int) -> list[Address]:
    """Every address the name resolves to now (a module function: tests swap it)."""
    try:
        infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationRefused(f"{hostname!r} does not resolve") from exc
    return [ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def _allowed(ip: Address, allow: Networks) -> bool:
    return is_public(ip) or any(ip in net for net in allow if net.version == ip.version)


def check(url: str, allow: Networks) -> Destination:
    """The destination of ``url`` if every address of its host may be reached."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise DestinationRefused("webhook url must be http(s)://host/...")
    if u.username is not None or u.password is not None:
        raise DestinationRefused("webhook url must not carry credentials (user:pass@)")
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError as exc:
        raise DestinationRefused(f"bad port in {url!r}") from exc
    addresses = resolve(u.hostname, port)
    refused = sorted({str(ip) for ip in addresses if not _allowed(ip, allow)})
    if not addresses or refused:
        raise DestinationRefused(
            f"{u.hostname!r} resolves to {', '.join(refused) or 'nothing'}: not a public "
            "address (loopback, private, link-local or metadata); an operator may allow "
            "networks with WEBHOOK_ALLOW_NETWORKS"
        )
    return Destination(url, u.hostname, addresses[0])
