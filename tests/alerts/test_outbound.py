"""The SSRF matrix: every way an owner-configured URL could reach inside the network.

A fake resolver stands in for DNS where the answer matters (names that resolve to
private addresses, rebinding); ``localhost`` goes through the machine's real resolver.
"""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from closeloop_alerts.delivery import make_client
from closeloop_alerts.notifiers import Notifier
from closeloop_alerts.outbound import (
    Allowlist,
    BlockedURL,
    IPAddress,
    UnresolvableHost,
    check_url,
    is_public,
    literal_address,
    pinned_request,
)
from tests.alerts.support import Reply, WebhookReceiver

NOTHING_ALLOWED = Allowlist.parse(())


class FakeDns:
    """Answers from a table; counts lookups; a list of answers is served one per lookup."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, _port: int) -> list[IPAddress]:
        self.lookups.append(host)
        answers = self.table.get(host)
        if not answers:
            raise UnresolvableHost("cannot resolve host: fake NXDOMAIN")
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return [ipaddress.ip_address(address) for address in answer]


@pytest.mark.parametrize(
    "url",
    [
        # private IPv4 ranges, CGNAT, "this network"
        "http://10.0.0.1/",
        "http://10.255.255.254/",
        "http://172.16.0.1/",
        "http://172.31.255.254/",
        "http://192.168.0.1/",
        "http://100.64.0.1/",
        "http://100.127.255.254/",
        "http://0.0.0.0/",
        "http://0.1.2.3/",
        # loopback
        "http://127.0.0.1/",
        "http://127.8.9.10:8080/",
        "http://[::1]/",
        # link-local and cloud metadata
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[fe80::a9fe:a9fe]/",
        # IPv6 unique local (fc00::/7), unspecified
        "http://[fc00::1]/",
        "http://[fd12:3456:789a::1]/",
        "http://[::]/",
        # IPv4 addresses inside IPv6: mapped, NAT64, 6to4
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "http://[2002:c0a8:101::]/",
        # the same addresses in the encodings inet_aton accepts
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://017700000001/",  # 127.0.0.1 as one octal number
        "http://0x7f000001/",  # 127.0.0.1 as one hex number
        "http://0177.0.0.1/",  # octal first part
        "http://0x7f.0.0.1/",  # hex first part
        "http://0x7f.1/",  # two parts
        "http://127.1/",  # two parts, decimal
        "http://3232235777/",  # 192.168.1.1
        "http://0xa9fea9fe/",  # 169.254.169.254
        "http://0/",  # 0.0.0.0
        # multicast and reserved
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://[ff02::1]/",
    ],
)
async def test_internal_addresses_are_blocked_however_written(url: str) -> None:
    dns = FakeDns({})
    with pytest.raises(BlockedURL, match="non-public"):
        await check_url(url, NOTHING_ALLOWED, dns)
    # Numeric hosts never reach DNS: their meaning cannot depend on a resolver.
    assert dns.lookups == []


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://8.8.8.8/hook", "8.8.8.8"),
        ("https://134744072/hook", "8.8.8.8"),  # decimal
        ("https://0x8080808/hook", "8.8.8.8"),  # hex
        ("https://[2001:4860:4860::8888]/hook", "2001:4860:4860::8888"),
        ("https://[::ffff:8.8.8.8]/hook", "::ffff:808:808"),
    ],
)
async def test_public_addresses_pass_in_any_encoding(url: str, address: str) -> None:
    assert str(await check_url(url, NOTHING_ALLOWED, FakeDns({}))) == address


def test_literal_addresses_are_read_like_the_c_library_reads_them() -> None:
    assert literal_address("2130706433") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("0x7f.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("hooks.example.com") is None
    assert literal_address("1e100.net") is None
    with pytest.raises(BlockedURL, match="not a valid address"):
        literal_address("4294967296")
    assert not is_public(ipaddress.ip_address("64:ff9b::a00:1"))
    assert is_public(ipaddress.ip_address("64:ff9b::808:808"))


async def test_names_that_resolve_to_internal_addresses_are_blocked() -> None:
    dns = FakeDns(
        {
            "metadata.test": [["169.254.169.254"]],
            "intranet.test": [["10.1.2.3"]],
            "v6.test": [["fd00::5"]],
            "mapped.test": [["::ffff:192.168.0.10"]],
            # One bad answer among good ones is enough: the client might pick any of them.
            "mixed.test": [["8.8.8.8", "127.0.0.1"]],
            "public.test": [["8.8.4.4", "2001:4860:4860::8844"]],
        }
    )
    for host in ("metadata.test", "intranet.test", "v6.test", "mapped.test", "mixed.test"):
        with pytest.raises(BlockedURL, match="non-public"):
            await check_url(f"https://{host}/hook", NOTHING_ALLOWED, dns)
    assert str(await check_url("https://public.test/hook", NOTHING_ALLOWED, dns)) == "8.8.4.4"
    with pytest.raises(UnresolvableHost):
        await check_url("https://nxdomain.test/", NOTHING_ALLOWED, dns)


async def test_localhost_through_the_real_resolver_is_blocked() -> None:
    with pytest.raises(BlockedURL, match="non-public"):
        await check_url("http://localhost:8003/v1/owners", NOTHING_ALLOWED)
    with pytest.raises(BlockedURL, match="non-public"):
        await check_url("http://LocalHost/", NOTHING_ALLOWED)


async def test_rebinding_cannot_move_the_request_after_the_check() -> None:
    # The first answer is public, every later one internal: the request must go to the
    # address that was checked, and the name must be looked up exactly once.
    dns = FakeDns({"rebind.test": [["8.8.8.8"], ["127.0.0.1"]]})
    async with make_client(timeout_s=2.0) as http:
        request = await pinned_request(
            http,
            "POST",
            "https://rebind.test:8443/hook?x=1",
            NOTHING_ALLOWED,
            content=b"{}",
            headers={"content-type": "application/json"},
            resolver=dns,
        )
    assert dns.lookups == ["rebind.test"]
    assert request.url.host == "8.8.8.8"
    assert request.url.port == 8443
    assert request.url.path == "/hook"
    assert request.url.query == b"x=1"
    # The name lives on only where it names, not where it connects.
    assert request.headers["host"] == "rebind.test:8443"
    assert request.extensions["sni_hostname"] == "rebind.test"
    # Asked again, the check sees the internal answer and refuses.
    with pytest.raises(BlockedURL, match="non-public"):
        await check_url("https://rebind.test/hook", NOTHING_ALLOWED, dns)


async def test_deliveries_do_not_follow_redirects(receiver: WebhookReceiver) -> None:
    # The redirect points at an internal address: following it would be the SSRF.
    receiver.script(
        "/redirect",
        Reply(302, {"location": "http://169.254.169.254/latest/meta-data/"}),
    )
    receiver.script("/redirect-local", Reply(307, {"location": receiver.url("/inside")}))
    allow_receiver = Allowlist.parse(["127.0.0.1"])
    async with make_client(timeout_s=2.0) as http:
        notifier = Notifier(http, allowlist=allow_receiver)
        for path in ("/redirect", "/redirect-local"):
            result = await notifier._post(receiver.url(path), b"{}", {}, "slack")
            assert result.status_code in (302, 307)
            assert result.error is not None
    assert receiver.at("/inside") == []


async def test_the_notifier_refuses_internal_targets_without_sending() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _request: httpx.Response(200))
    ) as http:
        notifier = Notifier(http, allowlist=NOTHING_ALLOWED)
        result = await notifier._post("http://2130706433:9/hook", b"{}", {}, "slack")
    assert result.status_code is None
    assert result.error is not None
    assert "non-public" in result.error


async def test_the_allowlist_is_exact() -> None:
    allow = Allowlist.parse(
        ["hooks.corp.test", "*.apps.test", "10.20.0.0/16", "127.0.0.1", "fd00:1::/64"]
    )
    dns = FakeDns(
        {
            "hooks.corp.test": [["10.9.9.9"]],
            "hooks.corp.test.": [["10.9.9.9"]],
            "xhooks.corp.test": [["10.9.9.9"]],
            "sub.hooks.corp.test": [["10.9.9.9"]],
            "hooks.corp.test.evil": [["10.9.9.9"]],
            "a.apps.test": [["10.9.9.9"]],
            "apps.test": [["10.9.9.9"]],
            "evilapps.test": [["10.9.9.9"]],
            "in-range.test": [["10.20.255.1"]],
        }
    )
    for allowed in (
        "http://hooks.corp.test/",
        "http://HOOKS.corp.test/",
        "http://hooks.corp.test./",
        "http://a.apps.test/",
        "http://in-range.test/",
        "http://10.20.0.1/",
        "http://127.0.0.1:9/",
        "http://[fd00:1::5]/",
    ):
        await check_url(allowed, allow, dns)
    for refused in (
        "http://xhooks.corp.test/",
        "http://sub.hooks.corp.test/",
        "http://hooks.corp.test.evil/",
        "http://apps.test/",
        "http://evilapps.test/",
        "http://10.21.0.1/",
        "http://127.0.0.2/",
        "http://2130706434/",  # 127.0.0.2
        "http://[fd00:2::5]/",
        "http://[::ffff:10.21.0.1]/",
    ):
        with pytest.raises(BlockedURL):
            await check_url(refused, allow, dns)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://8.8.8.8/",
        "file:///etc/passwd",
        "gopher://8.8.8.8/",
        "http:///nohost",
        "http://8.8.8.8:99999/",
        "http://4294967296/",
    ],
)
async def test_other_schemes_and_broken_urls_are_blocked(url: str) -> None:
    with pytest.raises(BlockedURL):
        await check_url(url, NOTHING_ALLOWED, FakeDns({}))
