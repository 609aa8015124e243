"""Which URLs a webhook may be sent to: the guard against server-side request forgery (SSRF).

A subscription names a URL that riskdesk will POST to from inside its network. Left unchecked, a
partner could point it at the metadata service (169.254.169.254), a database port on 10.x, or the
services themselves on 127.0.0.1. So a target must be https and every address its host resolves
to must be globally routable. The check runs when the subscription is made and again before each
delivery, since DNS can change in between; the delivery then connects to the very address it
checked (the name is only used for TLS and `Host`), so a second lookup cannot swap it.

`allow_private` (RISKDESK_WEBHOOK_ALLOW_PRIVATE_TARGETS, the dev stack and tests) lifts the address
rule, and allows plain http to this machine (127.0.0.1, ::1, localhost) for local receivers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The URL may not receive webhooks; the message says why (safe to show the subscriber)."""


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A URL that passed the guard, and the addresses its host resolved to (empty if unchecked)."""

    url: str
    host: str
    addresses: list[IPAddress] = field(default_factory=list)


def address_problem(address: IPAddress) -> str | None:
    """Why a webhook may not go to `address`, or None if it is a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:10.0.0.1 reaches 10.0.0.1: judge the IPv4 address it carries.
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        # e.g. 100.64.0.0/10 (carrier-grade NAT): neither private nor reachable from outside.
        return "an address that is not publicly routable"
    return None


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why `url` cannot receive webhooks judging by its text alone, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises for a port out of range)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials; the signature authenticates riskdesk"
    if parts.fragment:
        return "must not have a fragment"
    if parts.scheme == "http":
        if not allow_private:
            return "must use https"
        if not _is_loopback_name(parts.hostname):
            return "must use https (plain http is allowed only to 127.0.0.1, ::1 or localhost)"
    return None


def _is_loopback_name(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def vet_target(url: str, *, allow_private: bool) -> WebhookTarget:
    """`url` as a target, with its vetted addresses; raises TargetRefused with the reason."""
    problem = url_problem(url, allow_private=allow_private)
    if problem is not None:
        raise TargetRefused(problem)
    parts = urlsplit(url)
    host = parts.hostname
    assert host is not None  # url_problem refuses a URL without one
    if allow_private:
        return WebhookTarget(url=url, host=host)
    addresses = await resolve(host, parts.port or 443)
    for address in addresses:
        reason = address_problem(address)
        if reason is not None:
            shown = "" if host == str(address) else f" ({host} resolves to {address})"
            raise TargetRefused(f"must not point at {reason}{shown}")
    return WebhookTarget(url=url, host=host, addresses=addresses)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (itself if it is an address); TargetRefused if none."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError) as error:
        raise TargetRefused(f"has a host that does not resolve ({host})") from error
    # sockaddr[0] is the address text; an IPv6 one may carry a `%scope`, which a public one never has.
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not found:
        raise TargetRefused(f"has a host that does not resolve ({host})")
    return list(dict.fromkeys(found))
