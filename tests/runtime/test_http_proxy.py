"""fleece_runtime.HttpClient through an HTTP forward proxy on 127.0.0.1.

The proxy (`ForwardProxy`) forwards plain HTTP requests and tunnels CONNECT;
the targets are the tests' HTTP and HTTPS servers. Host names of
example.com and example.org resolve to 127.0.0.1 here (`loopback_names`),
so NO_PROXY's name forms are tried on real connections.
"""

import base64
import io
import socket
import time
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.outbound_servers import (
    Certificate,
    ForwardProxy,
    certificate,
    closed_port,
    events,
    forward_proxy,
    tls_server,
)
from tests.runtime.runtime_servers import HttpServer
from tests.runtime.test_http_client import RETRIED, SLACK, debug_lines, failing

__all__ = ["certificate", "debug_lines", "forward_proxy", "tls_server"]  # fixtures

PASSWORD = "pa@ss"  # percent-encoded in the proxy URL: pa%40ss
ENCODED = "pa%40ss"
BASIC = "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode()


def port_of(server: HttpServer) -> int:
    return int(server.url.rpartition(":")[2])


def with_credentials(proxy: ForwardProxy) -> str:
    """The proxy's URL with user:pa@ss, and the proxy asking for them."""
    proxy.credentials = f"user:{PASSWORD}"
    return f"http://user:{ENCODED}@127.0.0.1:{proxy.port}"


def down_proxy() -> str:
    """The URL of a proxy where nothing listens."""
    return f"http://127.0.0.1:{closed_port()}"


@pytest.fixture
def loopback_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names under example.com and example.org resolve to 127.0.0.1 (no DNS here)."""
    resolve = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.rstrip(".").endswith(
            ("example.com", "example.org")
        ):
            host = "127.0.0.1"
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# Through the proxy -----------------------------------------------------------


def test_an_http_url_is_asked_of_http_proxy_by_its_absolute_url(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    client = runtime.HttpClient()

    response = client.get(f"{http_server.url}/orders", params={"page": 2})

    assert response.text == "ok"
    assert forward_proxy.lines == [f"GET {http_server.url}/orders?page=2 HTTP/1.1"]
    [received] = http_server.exchange.requests
    assert received["path"] == "/orders?page=2"
    assert received["headers"]["Host"] == f"127.0.0.1:{port_of(http_server)}"


def test_a_post_body_reaches_the_target_through_the_proxy(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)

    runtime.HttpClient().post(f"{http_server.url}/orders", json={"sku": "A-7"})

    assert forward_proxy.lines == [f"POST {http_server.url}/orders HTTP/1.1"]
    assert http_server.exchange.requests[0]["body"] == b'{"sku":"A-7"}'


def test_an_https_url_goes_through_a_tunnel_of_https_proxy(
    tls_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    certificate: Certificate,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url)
    client = runtime.HttpClient(verify=str(certificate.cert_file))

    response = client.get(f"{tls_server.url}/orders?page=2")

    assert response.text == "ok"
    [connect] = forward_proxy.lines
    assert connect.startswith(f"CONNECT 127.0.0.1:{port_of(tls_server)} HTTP/1.")
    assert tls_server.exchange.requests[0]["path"] == "/orders?page=2"


def test_tls_inside_the_tunnel_checks_the_target_s_certificate(
    tls_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    stream: io.StringIO,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url)

    with pytest.raises(runtime.HttpConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        runtime.HttpClient(retries=3).get(tls_server.url)  # the system's CAs

    assert len(forward_proxy.lines) == 1  # the tunnel opened, the target refused
    assert tls_server.attempts == 0
    assert events(stream, RETRIED) == []


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_proxies_given_to_the_client_replace_the_environment_s(
    scheme: str,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    certificate: Certificate,
    request: pytest.FixtureRequest,
) -> None:
    target = request.getfixturevalue(
        "tls_server" if scheme == "https" else "http_server"
    )
    monkeypatch.setenv(f"{scheme.upper()}_PROXY", down_proxy())
    client = runtime.HttpClient(
        proxies={scheme: forward_proxy.url}, verify=str(certificate.cert_file)
    )

    assert client.get(target.url).text == "ok"
    assert len(forward_proxy.lines) == 1


def test_a_proxy_for_one_scheme_leaves_the_other_direct(
    http_server: HttpServer, forward_proxy: ForwardProxy
) -> None:
    client = runtime.HttpClient(proxies={"https": forward_proxy.url})

    assert client.get(http_server.url).text == "ok"
    assert forward_proxy.requests == []


def test_all_proxy_serves_a_scheme_without_its_own_variable(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALL_PROXY", forward_proxy.url)

    assert runtime.HttpClient().get(http_server.url).text == "ok"
    assert forward_proxy.lines == [f"GET {http_server.url}/ HTTP/1.1"]


def test_a_lower_case_variable_wins_over_its_upper_case_one(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", down_proxy())
    monkeypatch.setenv("http_proxy", forward_proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "example.com")

    assert runtime.HttpClient(retries=0).get(http_server.url).text == "ok"
    assert len(forward_proxy.lines) == 1


def test_an_empty_lower_case_variable_turns_its_upper_case_one_off(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    monkeypatch.setenv("http_proxy", "")

    assert runtime.HttpClient().get(http_server.url).text == "ok"
    assert forward_proxy.requests == []


def test_trust_env_false_ignores_the_environment(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)

    assert runtime.HttpClient(trust_env=False).get(http_server.url).text == "ok"
    assert forward_proxy.requests == []


@pytest.mark.parametrize("proxies", [{}, False])
def test_no_proxies_given_means_direct_whatever_the_environment(
    proxies: Any,
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)

    assert runtime.HttpClient(proxies=proxies).get(http_server.url).text == "ok"
    assert forward_proxy.requests == []


def test_the_environment_is_read_when_the_client_is_created(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = runtime.HttpClient()
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    after = runtime.HttpClient()
    monkeypatch.delenv("HTTP_PROXY")

    before.get(http_server.url)
    after.get(http_server.url)

    assert len(forward_proxy.lines) == 1  # after's request only


# NO_PROXY --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("no_proxy", "host"),
    [
        ("example.com", "api.example.com"),
        (".example.com", "api.example.com"),
        ("*.example.com", "api.example.com"),
        ("example.com", "example.com"),
        ("EXAMPLE.COM", "api.example.com"),
        ("example.org, example.com", "api.example.com"),
        ("example.org example.com", "api.example.com"),
        ("api.example.com:{port}", "api.example.com"),
        ("*", "api.example.com"),
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1:{port}", "127.0.0.1"),
        ("127.0.0.0/8", "127.0.0.1"),
        ("example.com", "api.example.com."),  # fully qualified
    ],
)
@pytest.mark.usefixtures("loopback_names")
def test_no_proxy_sends_matching_hosts_direct(
    no_proxy: str,
    host: str,
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = port_of(http_server)
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy.format(port=port))

    assert runtime.HttpClient().get(f"http://{host}:{port}/").text == "ok"
    assert forward_proxy.requests == []
    assert http_server.exchange.requests[0]["headers"]["Host"] == f"{host}:{port}"


@pytest.mark.parametrize(
    ("no_proxy", "host"),
    [
        ("example.com", "api.example.org"),
        ("ample.com", "api.example.com"),  # a suffix, not a domain
        ("api.example.com", "example.com"),
        ("api.example.com:1", "api.example.com"),
        ("127.0.0.2", "127.0.0.1"),
        ("10.0.0.0/8", "127.0.0.1"),
        ("::1/128", "127.0.0.1"),
        ("127.0.0.1", "api.example.com"),  # no DNS lookup to compare
    ],
)
@pytest.mark.usefixtures("loopback_names")
def test_no_proxy_leaves_other_hosts_to_the_proxy(
    no_proxy: str,
    host: str,
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = port_of(http_server)
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)

    assert runtime.HttpClient().get(f"http://{host}:{port}/").text == "ok"
    assert forward_proxy.lines == [f"GET http://{host}:{port}/ HTTP/1.1"]


def test_no_proxy_also_spares_https_hosts_their_tunnel(
    tls_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    certificate: Certificate,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = runtime.HttpClient(verify=str(certificate.cert_file))

    assert client.get(tls_server.url).text == "ok"
    assert forward_proxy.requests == []


def test_the_no_proxy_key_of_proxies_bypasses_them(
    http_server: HttpServer, forward_proxy: ForwardProxy
) -> None:
    client = runtime.HttpClient(
        proxies={"http": forward_proxy.url, "no_proxy": "127.0.0.0/8"}
    )

    assert client.get(http_server.url).text == "ok"
    assert forward_proxy.requests == []


def test_the_environment_s_no_proxy_does_not_apply_to_proxies_given(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_PROXY", "*")

    runtime.HttpClient(proxies={"http": forward_proxy.url}).get(http_server.url)

    assert len(forward_proxy.lines) == 1


MALFORMED_ENTRIES = ["proxy.local:port", "10.0.0.0/33", "[::1", "[::1]8080", ":3128"]


@pytest.mark.parametrize("entry", MALFORMED_ENTRIES)
def test_a_malformed_no_proxy_entry_of_the_environment_is_skipped_with_a_warning(
    entry: str,
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    stream: io.StringIO,
) -> None:
    # Other tools read the same variable and skip what they cannot read.
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
    monkeypatch.setenv("no_proxy", f"{entry},127.0.0.1")

    assert runtime.HttpClient().get(http_server.url).status == 200

    assert forward_proxy.requests == []  # the entry after it still counts
    [warning] = events(stream, "NO_PROXY entry ignored")
    assert warning["variable"] == "no_proxy"
    assert repr(entry) in warning["problem"]


@pytest.mark.parametrize("entry", MALFORMED_ENTRIES)
def test_a_malformed_no_proxy_entry_given_is_refused_when_the_client_is_created(
    entry: str,
) -> None:
    with pytest.raises(ValueError, match=r"^proxies\['no_proxy'\]: ") as raised:
        runtime.HttpClient(
            proxies={"http": "http://127.0.0.1:3128", "no_proxy": f"localhost,{entry}"}
        )

    assert repr(entry) in str(raised.value)


# Credentials -----------------------------------------------------------------


def test_proxy_credentials_go_with_each_http_request_percent_decoded(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", with_credentials(forward_proxy))
    client = runtime.HttpClient()

    assert [client.get(http_server.url).status for _ in range(2)] == [200, 200]
    assert [request.authorization for request in forward_proxy.requests] == [BASIC] * 2
    assert forward_proxy.connections == 1


def test_proxy_credentials_go_on_the_tunnel_s_connect_and_not_to_the_target(
    tls_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    certificate: Certificate,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", with_credentials(forward_proxy))
    client = runtime.HttpClient(verify=str(certificate.cert_file))

    assert client.get(tls_server.url).status == 200
    [connect] = forward_proxy.requests
    assert connect.line.startswith("CONNECT ") and connect.authorization == BASIC
    assert "Proxy-Authorization" not in tls_server.exchange.requests[0]["headers"]


def test_an_http_request_refused_by_the_proxy_is_its_407_answer(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forward_proxy.credentials = "user:other"
    monkeypatch.setenv(
        "HTTP_PROXY", f"http://user:{ENCODED}@127.0.0.1:{forward_proxy.port}"
    )

    response = runtime.HttpClient().get(http_server.url)

    assert (response.status, response.attempts) == (407, 1)
    assert http_server.attempts == 0


def test_proxy_credentials_never_reach_the_log_lines(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    debug_lines: io.StringIO,
) -> None:
    http_server.responder = failing(503, times=1)
    monkeypatch.setenv("HTTP_PROXY", with_credentials(forward_proxy))

    runtime.HttpClient(backoff=0.01).get(http_server.url)
    with pytest.raises(runtime.HttpConnectionError):
        runtime.HttpClient(
            proxies={"http": f"http://user:{ENCODED}@127.0.0.1:{closed_port()}"},
            retries=1,
            backoff=0.01,
        ).get(http_server.url)

    text = debug_lines.getvalue()
    assert [len(events(debug_lines, event)) for event in ("HTTP request", RETRIED)] == [
        1,
        2,
    ]
    assert not [secret for secret in (PASSWORD, ENCODED, BASIC[6:]) if secret in text]
    [request] = events(debug_lines, "HTTP request")
    assert request["proxy"] == f"http://***@127.0.0.1:{forward_proxy.port}"
    assert "Proxy-Authorization" not in request["headers"]
    assert "(proxy http://***@127.0.0.1:" in events(debug_lines, RETRIED)[1]["reason"]


def test_proxy_credentials_never_reach_errors_answers_or_reprs(
    tls_server: HttpServer,
    forward_proxy: ForwardProxy,
    certificate: Certificate,
) -> None:
    url = with_credentials(forward_proxy)
    client = runtime.HttpClient(
        proxies={"https": url}, verify=str(certificate.cert_file)
    )
    answered = client.get(tls_server.url)
    forward_proxy.refuse = 407
    client.close()  # the next request opens a new tunnel, refused
    with pytest.raises(runtime.HttpConnectionError) as refused:
        client.get(tls_server.url)
    with pytest.raises(runtime.HttpConnectionError) as down:
        runtime.HttpClient(
            proxies={"https": f"http://user:{ENCODED}@127.0.0.1:{closed_port()}"},
            retries=0,
        ).get(tls_server.url)

    texts = [repr(client), repr(answered), repr(answered.headers), answered.url]
    for error in (refused.value, down.value):
        texts += [str(error), repr(error), error.url, str(error.__cause__)]
    assert not [
        text
        for text in texts
        for secret in (PASSWORD, ENCODED, BASIC[6:])
        if secret in text
    ]
    assert "http://***@" in str(refused.value) and "http://***@" in str(down.value)


@pytest.mark.parametrize(
    "password", ["se/cret", "se?cret", "se#cret", "se@cret", "s\u00e9\uff03cret"]
)
def test_a_password_works_without_percent_encoding(
    password: str, http_server: HttpServer, forward_proxy: ForwardProxy
) -> None:
    forward_proxy.credentials = f"user:{password}"
    url = f"http://user:{password}@127.0.0.1:{forward_proxy.port}"

    assert runtime.HttpClient(proxies={"http": url}).get(http_server.url).status == 200
    assert forward_proxy.requests[0].authorization == (
        "Basic " + base64.b64encode(f"user:{password}".encode()).decode()
    )


@pytest.mark.parametrize(
    "userinfo",
    [
        "t0kenSECRET",
        "user:se/cretSECRET",
        "user:se#cretSECRET",
        "user:s\u00e9\uff03cretSECRET",
    ],
)
def test_the_credentials_of_an_unusable_proxy_url_never_reach_the_error(
    userinfo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://{userinfo}@proxy.local:port")

    with pytest.raises(ValueError) as raised:
        runtime.HttpClient()

    assert "SECRET" not in str(raised.value) and "cret" not in str(raised.value)
    assert "'http://***@proxy.local:port'" in str(raised.value)


def test_a_user_name_alone_is_masked_too(
    http_server: HttpServer, debug_lines: io.StringIO
) -> None:
    client = runtime.HttpClient(
        proxies={"http": f"http://t0kenSECRET@127.0.0.1:{closed_port()}"},
        retries=1,
        backoff=0.01,
    )

    with pytest.raises(runtime.HttpConnectionError) as down:
        client.get(http_server.url)

    texts = [str(down.value), repr(down.value), debug_lines.getvalue()]
    assert not [text for text in texts if "t0kenSECRET" in text]
    assert "(proxy http://***@127.0.0.1:" in str(down.value)


@pytest.mark.usefixtures("loopback_names")
def test_an_internationalised_host_is_asked_of_the_proxy_in_idna(
    http_server: HttpServer, forward_proxy: ForwardProxy
) -> None:
    port = port_of(http_server)
    client = runtime.HttpClient(proxies={"http": forward_proxy.url})

    assert client.get(f"http://bücher.example.com:{port}/x").status == 200
    assert forward_proxy.lines == [
        f"GET http://xn--bcher-kva.example.com:{port}/x HTTP/1.1"
    ]


@pytest.mark.usefixtures("loopback_names")
def test_an_internationalised_host_is_tunnelled_to_in_idna(
    tls_server: HttpServer, forward_proxy: ForwardProxy
) -> None:
    port = port_of(tls_server)
    client = runtime.HttpClient(proxies={"https": forward_proxy.url}, verify=False)

    assert client.get(f"https://bücher.example.com:{port}/x").status == 200
    assert forward_proxy.lines[0].startswith(
        f"CONNECT xn--bcher-kva.example.com:{port} HTTP/1."
    )


# Refusals and failures -------------------------------------------------------


@pytest.mark.parametrize("status", [407, 403])
def test_a_tunnel_the_proxy_refuses_is_not_retried(
    status: int,
    tls_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    certificate: Certificate,
    stream: io.StringIO,
) -> None:
    forward_proxy.refuse = status
    monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url)
    url = f"{tls_server.url}/orders"

    with pytest.raises(runtime.HttpConnectionError) as raised:
        runtime.HttpClient(verify=str(certificate.cert_file), retries=3).get(url)

    assert str(raised.value).startswith(
        f"GET {url}: the proxy {forward_proxy.url} refused the tunnel to "
        f"127.0.0.1:{port_of(tls_server)}: {status} "
    )
    assert raised.value.attempts == 1
    assert len(forward_proxy.lines) == 1
    assert events(stream, RETRIED) == []
    assert tls_server.attempts == 0


def test_a_tunnel_refused_with_502_is_retried(
    tls_server: HttpServer,
    forward_proxy: ForwardProxy,
    certificate: Certificate,
    stream: io.StringIO,
) -> None:
    forward_proxy.refuse = 502
    client = runtime.HttpClient(
        proxies={"https": forward_proxy.url},
        verify=str(certificate.cert_file),
        retries=2,
        backoff=0.01,
    )

    with pytest.raises(runtime.HttpConnectionError, match="after 3 attempts"):
        client.post(tls_server.url, json={})  # never sent: retried whatever the method

    assert len(forward_proxy.lines) == 3
    assert [line["attempt"] for line in events(stream, RETRIED)] == [1, 2]
    assert "refused the tunnel" in events(stream, RETRIED)[0]["reason"]


def test_a_proxy_that_is_down_is_retried_then_raises(
    http_server: HttpServer,
    monkeypatch: pytest.MonkeyPatch,
    stream: io.StringIO,
) -> None:
    proxy = down_proxy()
    monkeypatch.setenv("HTTP_PROXY", proxy)

    with pytest.raises(runtime.HttpConnectionError) as raised:
        runtime.HttpClient(retries=2, backoff=0.01).get(http_server.url)

    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    assert raised.value.attempts == 3
    assert f"(proxy {proxy}) (after 3 attempts)" in str(raised.value)
    assert [line["attempt"] for line in events(stream, RETRIED)] == [1, 2]
    assert http_server.attempts == 0


def test_the_connect_timeout_bounds_the_tunnel_s_exchange(
    tls_server: HttpServer,
    forward_proxy: ForwardProxy,
    certificate: Certificate,
) -> None:
    forward_proxy.hang = True
    client = runtime.HttpClient(
        proxies={"https": forward_proxy.url},
        verify=str(certificate.cert_file),
        timeout=(0.3, 60),
        retries=0,
    )

    started = time.monotonic()
    with pytest.raises(runtime.HttpTimeoutError):
        client.get(tls_server.url)

    assert time.monotonic() - started < 0.3 + SLACK
    assert len(forward_proxy.lines) == 1


# Unusable settings -----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://user:secret@proxy.local:3128", "TLS to the proxy (https://)"),
        ("socks5://user:secret@proxy.local:1080", "socks5:// proxies are not"),
        ("http://user:secret@proxy.local:port", "Port could not be cast"),
        ("http://user:secret@", "it has no host"),
        ("http://user:secret@proxy.local:3128/egress", "http://[user:password@]host"),
        ("http://user:secret@proxy.local:3128/?q=1", "http://[user:password@]host"),
        ("proxy local:3128", "it holds spaces"),
    ],
)
def test_an_unusable_proxy_url_is_refused_naming_its_variable(
    url: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", url)

    with pytest.raises(
        ValueError, match=r"^HTTPS_PROXY: (unusable|malformed) "
    ) as raised:
        runtime.HttpClient()

    assert problem in str(raised.value)
    assert "secret" not in str(raised.value)


def test_an_unusable_proxy_url_given_is_refused_naming_its_key() -> None:
    with pytest.raises(ValueError) as raised:
        runtime.HttpClient(proxies={"http": "https://user:secret@proxy.local:3128"})

    assert str(raised.value).startswith(
        "proxies['http']: unusable proxy URL 'https://***@proxy.local:3128'"
    )


def test_a_proxy_url_without_a_scheme_is_http(
    http_server: HttpServer, forward_proxy: ForwardProxy
) -> None:
    client = runtime.HttpClient(proxies={"http": f"127.0.0.1:{forward_proxy.port}"})

    assert client.get(http_server.url).text == "ok"
    assert len(forward_proxy.lines) == 1


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"proxies": {"ftp": "http://proxy.local:3128"}}, ValueError),
        ({"proxies": {"https": 3128}}, TypeError),
        ({"proxies": True}, TypeError),
        ({"proxies": "http://user:secret@proxy.local:3128"}, TypeError),
        ({"trust_env": "yes"}, TypeError),
    ],
)
def test_bad_proxy_settings_are_refused(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        runtime.HttpClient(**options)

    assert "secret" not in str(raised.value)


# Connections -----------------------------------------------------------------


def test_http_requests_to_two_hosts_share_one_connection_to_the_proxy(
    http_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = HttpServer()
    other.start()
    try:
        monkeypatch.setenv("HTTP_PROXY", forward_proxy.url)
        client = runtime.HttpClient()
        for url in (http_server.url, other.url, http_server.url):
            assert client.get(url).text == "ok"
    finally:
        other.stop()

    assert len(forward_proxy.lines) == 3
    assert forward_proxy.connections == 1


def test_https_requests_share_one_tunnel(
    tls_server: HttpServer,
    forward_proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    certificate: Certificate,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url)
    client = runtime.HttpClient(verify=str(certificate.cert_file))

    assert [client.get(tls_server.url).status for _ in range(2)] == [200, 200]
    assert len(forward_proxy.lines) == 1 and forward_proxy.connections == 1
    assert tls_server.exchange.connections == 1 and tls_server.attempts == 2


def test_a_direct_connection_is_never_shared_with_proxied_requests(
    http_server: HttpServer, forward_proxy: ForwardProxy
) -> None:
    # The proxy's own address, reached directly, is the pool key a careless
    # client would give the proxied requests too.
    client = runtime.HttpClient(
        proxies={
            "http": forward_proxy.url,
            "no_proxy": f"127.0.0.1:{forward_proxy.port}",
        }
    )

    assert client.get(f"{forward_proxy.url}/status").text == "proxy"
    assert client.get(http_server.url).text == "ok"
    assert client.get(f"{forward_proxy.url}/status").text == "proxy"

    assert forward_proxy.lines == [
        "GET /status HTTP/1.1",
        f"GET {http_server.url}/ HTTP/1.1",
        "GET /status HTTP/1.1",
    ]
    assert forward_proxy.connections == 2
