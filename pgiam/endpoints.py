"""Which name a token must be signed for: AWS endpoint name shapes, and following a CNAME chain to one.

RDS, RDS Proxy and Aurora DSQL check the token against the endpoint name it was signed for, so a
token signed for a company CNAME, an IP address or `localhost` is refused ("PAM authentication
failed", AWS RDS user guide, "Connecting to your DB instance using IAM authentication"); the
certificate names the endpoint too. For a host that is not shaped like an AWS endpoint name, pgiam
follows its CNAME chain and takes the FIRST AWS name in it: an Aurora cluster endpoint is itself a
CNAME to an instance endpoint, so the last name of the chain is the wrong one. The standard
library cannot read CNAME records; dnspython does.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable

from pgiam.errors import UsageError

# One step of a chain: the CNAME target of a name, None when the name has no CNAME record;
# LookupError(reason) when the name does not exist or DNS does not answer. Tests substitute it.
Resolver = Callable[[str], "str | None"]

NAMESERVER_ENV = "PGIAM_NAMESERVER"  # ADDR[:PORT]: ask this DNS server instead of the system's
MAX_HOPS = 16
DNS_TIMEOUT = 5.0  # seconds for the whole lookup of one name


def is_aws_endpoint(host: str) -> bool:
    """An RDS instance/cluster/custom/proxy endpoint or an Aurora DSQL endpoint, by its shape alone."""
    from pgiam import config

    return config.infer_region(host) is not None


def _hint(host: str) -> str:
    return ("pass the AWS endpoint name as --host (e.g. mydb.cluster-abc123.us-east-1.rds.amazonaws.com; "
            f"`pgiam discover` lists them), and --via ADDR:PORT if {host} is how you reach it (a tunnel or port forward)")


def signing_name(host: str, notices: list[str], resolve: Resolver | None = None) -> str:
    """`host` when it is an AWS endpoint name (resolvable or not), else the first AWS name of its CNAME chain.

    Raises UsageError when the chain names none (or DNS cannot tell): the token would be refused.
    """
    if is_aws_endpoint(host):
        return host
    bare = host.partition("%")[0]
    try:
        ipaddress.ip_address(bare)
        raise UsageError(f"host {host} is an IP address: RDS and DSQL refuse a token not signed for the endpoint name",
                         _hint(host))
    except ValueError:
        pass
    if host.lower().rstrip(".") == "localhost":
        raise UsageError("host localhost is not an AWS endpoint name: the token would be refused", _hint(host))
    resolve = resolve or system_resolver()
    chain = [host.lower().rstrip(".")]
    while len(chain) <= MAX_HOPS:
        try:
            target = resolve(chain[-1])
        except LookupError as err:
            raise UsageError(f"host {host} is not an AWS endpoint name, and looking up {chain[-1]} failed: {err}",
                             _hint(host)) from None
        if target is None:
            break
        target = target.lower().rstrip(".")
        if target in chain:
            break  # a CNAME loop
        chain.append(target)
        if is_aws_endpoint(target):
            notices.append(f"{host} is a CNAME for the AWS endpoint {target}: tokens are signed for {target}, "
                           f"which is also the service's host (the name in the server certificate)")
            return target
    via = f" (CNAME chain: {' -> '.join(chain)})" if len(chain) > 1 else " and has no CNAME to one"
    raise UsageError(f"host {host} is not an AWS endpoint name{via}: a token signed for it would be refused",
                     _hint(host))


def system_resolver() -> Resolver:
    """CNAME lookups through dnspython: the system's resolver configuration, or PGIAM_NAMESERVER."""
    import dns.exception
    import dns.name
    import dns.resolver

    server = os.environ.get(NAMESERVER_ENV)
    if server:
        addr, port = _parse_server(server)
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = [addr]
        r.port = port
    else:
        try:
            r = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise UsageError("no DNS resolver is configured (no nameserver in /etc/resolv.conf)",
                             f"set {NAMESERVER_ENV}=ADDR[:PORT], or pass the AWS endpoint name as --host") from None
    r.lifetime = DNS_TIMEOUT

    def cname(name: str) -> str | None:
        try:
            answer = r.resolve(dns.name.from_text(name), "CNAME", raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            raise LookupError("no such name") from None
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as err:
            raise LookupError(f"DNS did not answer ({type(err).__name__})") from None
        except dns.exception.DNSException as err:
            raise LookupError(f"{type(err).__name__}") from None
        if answer.rrset is None:
            return None
        return str(answer.rrset[0].target)

    return cname


def _parse_server(value: str) -> tuple[str, int]:
    """`ADDR`, `ADDR:PORT` or `[v6]:PORT` of PGIAM_NAMESERVER."""
    addr, port = value, 53
    if value.startswith("["):
        addr, _, rest = value[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif value.count(":") == 1:
        addr, _, p = value.partition(":")
        port = int(p) if p.isdigit() else -1
    try:
        ipaddress.ip_address(addr)
        if not 0 < port < 65536:
            raise ValueError(port)
    except ValueError:
        raise UsageError(f"{NAMESERVER_ENV}={value!r} is not ADDR[:PORT]", f"set it like {NAMESERVER_ENV}=127.0.0.1:5353, or unset it") from None
    return addr, port
