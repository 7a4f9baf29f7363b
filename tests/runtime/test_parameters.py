"""fleece_runtime's cached parameters and secrets, against moto's server."""

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.outbound_servers import closed_port


class Calls:
    """The API calls the runtime's own clients make (counted by botocore's events)."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, event_name: str, **kwargs: Any) -> None:
        self.made.append(event_name.rsplit(".", 1)[-1])

    def count(self, operation: str) -> int:
        return self.made.count(operation)


@pytest.fixture
def calls(aws: str) -> Iterator[Calls]:
    counter = Calls()
    for service in ("ssm", "secretsmanager"):
        runtime._parameter_client(service).meta.events.register("before-call", counter)
    yield counter
    for service in ("ssm", "secretsmanager"):
        runtime._parameter_client(service).meta.events.unregister(
            "before-call", counter
        )


@pytest.fixture
def ssm(aws: str) -> Any:
    return boto3.client("ssm")


@pytest.fixture
def secrets(aws: str) -> Any:
    return boto3.client("secretsmanager")


def put(ssm: Any, name: str, value: str, kind: str = "String") -> None:
    ssm.put_parameter(Name=name, Value=value, Type=kind, Overwrite=True)


def test_get_parameter_reads_a_string(ssm: Any) -> None:
    put(ssm, "/orders/db/host", "db.internal")

    assert runtime.get_parameter("/orders/db/host") == "db.internal"


def test_a_secure_string_is_decrypted_unless_told_not_to(ssm: Any) -> None:
    put(ssm, "/orders/db/password", "hunter2", "SecureString")

    assert runtime.get_parameter("/orders/db/password") == "hunter2"
    assert runtime.get_parameter("/orders/db/password", decrypt=False) != "hunter2"


def test_a_value_is_served_from_the_cache_until_max_age(ssm: Any, calls: Calls) -> None:
    put(ssm, "/orders/flag", "on")
    assert runtime.get_parameter("/orders/flag") == "on"
    put(ssm, "/orders/flag", "off")

    assert runtime.get_parameter("/orders/flag") == "on"
    assert runtime.get_parameter("/orders/flag", max_age=0) == "off"
    assert calls.count("GetParameter") == 2


def test_force_fetch_reads_the_current_value(ssm: Any) -> None:
    put(ssm, "/orders/flag", "on")
    runtime.get_parameter("/orders/flag")
    put(ssm, "/orders/flag", "off")

    assert runtime.get_parameter("/orders/flag", force_fetch=True) == "off"
    assert runtime.get_parameter("/orders/flag") == "off"


def test_clear_parameter_cache_forgets_every_value(ssm: Any, calls: Calls) -> None:
    put(ssm, "/orders/flag", "on")
    runtime.get_parameter("/orders/flag")

    runtime.clear_parameter_cache()
    runtime.get_parameter("/orders/flag")

    assert calls.count("GetParameter") == 2


def test_transforms_parse_json_and_decode_base64(ssm: Any) -> None:
    put(ssm, "/orders/settings", json.dumps({"retries": 3}))
    put(ssm, "/orders/key", base64.b64encode(b"\x00\x01binary").decode())

    assert runtime.get_parameter("/orders/settings", transform="json") == {"retries": 3}
    assert runtime.get_parameter("/orders/settings") == '{"retries": 3}'
    assert runtime.get_parameter("/orders/key", transform="binary") == b"\x00\x01binary"


def test_a_value_that_does_not_transform_is_refused_without_showing_it(
    ssm: Any,
) -> None:
    put(ssm, "/orders/password", "hunter2-not-json", "SecureString")

    with pytest.raises(ValueError) as raised:
        runtime.get_parameter("/orders/password", transform="json")

    assert str(raised.value) == "the value of /orders/password is not JSON"
    with pytest.raises(ValueError, match="is not base64"):
        runtime.get_parameter("/orders/password", transform="binary")


def test_a_caller_changing_a_json_value_changes_no_later_result(
    ssm: Any, calls: Calls
) -> None:
    put(ssm, "/orders/settings", json.dumps({"limits": [1, 2]}))
    put(ssm, "/orders/tree/a", json.dumps({"limits": [3]}))
    first = runtime.get_parameter("/orders/settings", transform="json")
    many = runtime.get_parameters(["/orders/settings"], transform="json")
    tree = runtime.get_parameters_by_path("/orders/tree", transform="json")

    first["limits"].append(99)
    many["/orders/settings"]["limits"].append(99)
    tree["a"]["limits"].append(99)

    assert runtime.get_parameter("/orders/settings", transform="json") == {
        "limits": [1, 2]
    }
    assert runtime.get_parameters(["/orders/settings"], transform="json") == {
        "/orders/settings": {"limits": [1, 2]}
    }
    assert runtime.get_parameters_by_path("/orders/tree", transform="json") == {
        "a": {"limits": [3]}
    }
    assert calls.made == ["GetParameter", "GetParametersByPath"]


def test_an_unknown_transform_is_refused(ssm: Any) -> None:
    with pytest.raises(ValueError, match="transform must be"):
        runtime.get_parameter("/orders/x", transform="yaml")


def test_a_missing_parameter_raises_parameter_not_found(ssm: Any) -> None:
    with pytest.raises(
        runtime.ParameterNotFound, match="no SSM parameter /orders/none"
    ):
        runtime.get_parameter("/orders/none")


def test_get_parameters_asks_ssm_once_per_ten_names(ssm: Any, calls: Calls) -> None:
    names = [f"/orders/p{number:02d}" for number in range(12)]
    for name in names:
        put(ssm, name, name.upper())

    values = runtime.get_parameters(names)

    assert values == {name: name.upper() for name in names}
    assert list(values) == names
    assert calls.count("GetParameters") == 2


def test_get_parameters_asks_only_for_names_not_cached(ssm: Any, calls: Calls) -> None:
    for name in ("/a", "/b", "/c"):
        put(ssm, name, name)
    runtime.get_parameter("/a")
    runtime.get_parameters(["/b"])

    assert runtime.get_parameters(["/a", "/b", "/c"]) == {
        "/a": "/a",
        "/b": "/b",
        "/c": "/c",
    }
    assert calls.made == ["GetParameter", "GetParameters", "GetParameters"]
    assert runtime.get_parameters(["/a", "/b", "/c"])
    assert len(calls.made) == 3


def test_get_parameters_names_every_missing_parameter(ssm: Any) -> None:
    put(ssm, "/orders/here", "yes")

    with pytest.raises(runtime.ParameterNotFound) as raised:
        runtime.get_parameters(["/orders/here", "/orders/gone", "/orders/lost"])

    assert str(raised.value) == "no SSM parameters /orders/gone, /orders/lost"
    assert runtime.get_parameter("/orders/here") == "yes"


def test_get_parameters_refuses_a_single_name() -> None:
    with pytest.raises(TypeError, match="a list of names"):
        runtime.get_parameters("/orders/one")


def test_get_parameters_by_path_reads_every_page_by_relative_name(
    ssm: Any, calls: Calls
) -> None:
    for number in range(15):
        put(ssm, f"/orders/config/p{number:02d}", str(number))
    put(ssm, "/orders/config/db/host", "db.internal")
    put(ssm, "/orders/other", "not under the path")

    values = runtime.get_parameters_by_path("/orders/config/")

    assert values == {
        **{f"p{number:02d}": str(number) for number in range(15)},
        "db/host": "db.internal",
    }
    assert calls.count("GetParametersByPath") == 2
    runtime.get_parameters_by_path("/orders/config")
    assert calls.count("GetParametersByPath") == 2


def test_get_parameters_by_path_without_recursion_reads_direct_children(
    ssm: Any,
) -> None:
    put(ssm, "/orders/config/level", "one")
    put(ssm, "/orders/config/db/host", "db.internal")

    assert runtime.get_parameters_by_path("/orders/config", recursive=False) == {
        "level": "one"
    }


def test_get_parameters_by_path_transforms_and_decrypts(ssm: Any) -> None:
    put(ssm, "/orders/json/a", '{"x": 1}', "SecureString")
    put(ssm, "/orders/json/b", "[2]")

    assert runtime.get_parameters_by_path("/orders/json", transform="json") == {
        "a": {"x": 1},
        "b": [2],
    }


def test_an_empty_path_gives_an_empty_dict(ssm: Any) -> None:
    assert runtime.get_parameters_by_path("/nothing/here") == {}


def test_get_secret_reads_a_text_secret_and_caches_it(
    secrets: Any, calls: Calls
) -> None:
    secrets.create_secret(Name="orders/api-key", SecretString="k-123")

    assert runtime.get_secret("orders/api-key") == "k-123"
    assert runtime.get_secret("orders/api-key") == "k-123"
    assert calls.count("GetSecretValue") == 1


def test_get_secret_reads_a_binary_secret_as_bytes(secrets: Any) -> None:
    secrets.create_secret(Name="orders/cert", SecretBinary=b"\x00\xffcert")

    assert runtime.get_secret("orders/cert") == b"\x00\xffcert"
    assert runtime.get_secret("orders/cert", transform="binary") == b"\x00\xffcert"


def test_get_secret_parses_a_json_secret(secrets: Any) -> None:
    secrets.create_secret(
        Name="orders/db", SecretString=json.dumps({"user": "app", "password": "pw"})
    )

    assert runtime.get_secret("orders/db", transform="json") == {
        "user": "app",
        "password": "pw",
    }


def test_a_rotated_secret_is_read_after_force_fetch(secrets: Any) -> None:
    secrets.create_secret(Name="orders/api-key", SecretString="old")
    runtime.get_secret("orders/api-key")
    secrets.put_secret_value(SecretId="orders/api-key", SecretString="new")

    assert runtime.get_secret("orders/api-key") == "old"
    assert runtime.get_secret("orders/api-key", force_fetch=True) == "new"


def test_a_missing_secret_raises_parameter_not_found(secrets: Any) -> None:
    with pytest.raises(runtime.ParameterNotFound, match="no secret orders/none"):
        runtime.get_secret("orders/none")


def test_an_unreachable_service_raises_botocore_s_error(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(EndpointConnectionError):
        runtime.get_parameter("/orders/flag")
    with pytest.raises(EndpointConnectionError):
        runtime.get_secret("orders/api-key")


def test_the_clients_wait_three_seconds_and_try_three_times(ssm: Any) -> None:
    put(ssm, "/orders/db/host", "db.internal")
    runtime.get_parameter("/orders/db/host")

    config = runtime._parameter_client("ssm").meta.config
    assert (config.connect_timeout, config.read_timeout) == (3.0, 3.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}


def test_a_negative_max_age_is_refused(ssm: Any) -> None:
    with pytest.raises(ValueError, match="max_age must be a number >= 0"):
        runtime.get_parameter("/orders/x", max_age=-1)
