"""Cloud instance-metadata endpoints: the one list of what no image URL may ever reach.

A metadata service hands out the machine's credentials to whoever asks from inside it, which
makes it the usual prize of server-side request forgery. No image lives there, so these are
refused under every fetch policy, `VIEWFINDER_FETCH_ALLOW_PRIVATE=true` included.

IPv4 link-local (169.254.0.0/16) is refused whole: most clouds put their metadata, DNS and
time services there (AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack, Hetzner, IBM at
169.254.169.254; AWS ECS at 169.254.170.2; EKS Pod Identity at 169.254.170.23; Tencent at
169.254.0.23), and more get added. IPv6 link-local (fe80::/10) likewise (AWS answers at
fe80::a9fe:a9fe too). IPv6 forms that carry an IPv4 address (mapped, translated, compatible,
NAT64, 6to4) are judged as that address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class MetadataEndpoint:
    """A network (or single address) where a cloud serves instance metadata."""

    network: IPNetwork
    what: str


def _endpoint(network: str, what: str) -> MetadataEndpoint:
    return MetadataEndpoint(ipaddress.ip_network(network), what)


ENDPOINTS: tuple[MetadataEndpoint, ...] = (
    _endpoint(
        "169.254.0.0/16",
        "link-local, where cloud metadata services live (AWS, GCP, Azure, Oracle, "
        "DigitalOcean, OpenStack, AWS ECS, Tencent...)",
    ),
    _endpoint("fe80::/10", "IPv6 link-local, where cloud metadata services live (AWS)"),
    _endpoint("fd00:ec2::/64", "the AWS IPv6 metadata, DNS and time services"),
    _endpoint("fd20:ce::254/128", "the GCP IPv6 metadata server"),
    _endpoint("100.100.100.200/32", "the Alibaba Cloud metadata server"),
    _endpoint("192.0.0.192/32", "the Oracle Cloud metadata server"),
    _endpoint("168.63.129.16/32", "the Azure host agent (WireServer)"),
)
"""Every address range refused as a cloud metadata endpoint."""

NAMES: frozenset[str] = frozenset(
    {
        "metadata.google.internal",  # GCP
        "instance-data",  # AWS
        "instance-data.ec2.internal",  # AWS
        "metadata.tencentyun.com",  # Tencent Cloud
        "metadata.platformequinix.com",  # Equinix Metal
    }
)
"""Host names of metadata services, refused before any DNS lookup (their addresses are in
ENDPOINTS too, so a name that resolves to one is refused after the lookup as well)."""

_NAT64 = (
    ipaddress.ip_network("64:ff9b::/96"),  # well-known prefix
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use prefix, with the IPv4 address last
)
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT "IPv4-translated"
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated "IPv4-compatible"


def unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, translated, compatible, NAT64,
    6to4), else ip itself. `::` and `::1` stay themselves."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _TRANSLATED or any(ip in prefix for prefix in _NAT64):
        return low
    if ip in _COMPATIBLE and int(ip) > 1:
        return low
    return ip


def metadata_endpoint(address: str | IPAddress) -> MetadataEndpoint | None:
    """The metadata endpoint an address (in any of its IPv6 forms) belongs to, or None."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    for candidate in dict.fromkeys((ip, unwrap(ip))):
        for endpoint in ENDPOINTS:
            if candidate.version == endpoint.network.version and candidate in endpoint.network:
                return endpoint
    return None


def is_metadata_name(host: str) -> bool:
    """Whether a host name is a cloud metadata service's name (any case, trailing dot)."""
    return host.lower().rstrip(".") in NAMES
