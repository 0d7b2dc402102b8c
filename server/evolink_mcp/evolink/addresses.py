"""Which addresses a result download may reach: public ones, unless the host is allowed by configuration.

Imported only when a download starts (aiohttp stays off the start-up path)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class NonPublicAddressError(OSError):
    """A download target at a loopback, private, link-local or otherwise non-public address."""


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.partition("%")[0])  # "%": an IPv6 scope
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicAddressResolver(AbstractResolver):
    """aiohttp's resolver, refusing a host any of whose addresses is not public unless the host is allowed.

    aiohttp connects to the addresses checked here: a second, different DNS answer cannot slip past the check.
    (aiohttp does not resolve an IP literal: the client checks those itself.)"""

    def __init__(self, allowed: Callable[[str], bool]) -> None:
        self._allowed = allowed
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._resolver.resolve(host, port, family)
        if not self._allowed(host):
            for answer in answers:
                if not is_public_address(answer["host"]):
                    raise NonPublicAddressError(f"{host} resolves to {answer['host']}, which is not a public address")
        return answers

    async def close(self) -> None:
        await self._resolver.close()
