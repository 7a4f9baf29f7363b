"""fleece_runtime's authorizer answers; fleece 1.x's tests/test_authpolicy.py is the specification."""

from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime
from runtime_stub.fleece_runtime import AuthPolicy, HttpVerb, InvalidPolicy

ACCOUNT = "000000000000"
BASE = f"arn:aws:execute-api:*:{ACCOUNT}:myapi/mystage"


def policy() -> AuthPolicy:
    return AuthPolicy(ACCOUNT, principal="foo", rest_api_id="myapi", stage="mystage")


def expected(*statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "principalId": "foo",
        "policyDocument": {"Version": "2012-10-17", "Statement": list(statements)},
        "context": {},
    }


def statement(effect: str, *resources: str, condition: Any = None) -> dict[str, Any]:
    built: dict[str, Any] = {
        "Action": "execute-api:Invoke",
        "Effect": effect,
        "Resource": list(resources),
    }
    if condition is not None:
        built["Condition"] = condition
    return built


def test_allow_all() -> None:
    built = policy()
    built.allow_all_methods()

    assert built.build() == expected(statement("Allow", f"{BASE}/*/*"))


def test_deny_all() -> None:
    built = policy()
    built.deny_all_methods()

    assert built.build() == expected(statement("Deny", f"{BASE}/*/*"))


def test_allow_method() -> None:
    built = policy()
    built.allow_method("GET", "/test/path")

    assert built.build() == expected(statement("Allow", f"{BASE}/GET/test/path"))


def test_deny_method() -> None:
    built = policy()
    built.deny_method(HttpVerb.GET, "/test/path")

    assert built.build() == expected(statement("Deny", f"{BASE}/GET/test/path"))


@pytest.mark.parametrize("effect", ["Allow", "Deny"])
def test_a_method_with_conditions_gets_its_own_statement(effect: str) -> None:
    condition = {"DateLessThan": {"aws:CurrentTime": "foo"}}
    built = policy()
    add = (
        built.allow_method_with_conditions
        if effect == "Allow"
        else built.deny_method_with_conditions
    )
    add("GET", "/test/path", condition)

    # Then the statement of the plain methods, empty here, as 1.x wrote it.
    assert built.build() == expected(
        statement(effect, f"{BASE}/GET/test/path", condition=condition),
        statement(effect),
    )


def test_plain_methods_share_one_statement_per_effect() -> None:
    built = policy()
    built.allow_method("GET", "/orders")
    built.allow_method("POST", "/orders")
    built.deny_method("DELETE", "/orders/*")

    assert built.build()["policyDocument"]["Statement"] == [
        statement("Allow", f"{BASE}/GET/orders", f"{BASE}/POST/orders"),
        statement("Deny", f"{BASE}/DELETE/orders/*"),
    ]


def test_unset_api_region_and_stage_are_wildcards() -> None:
    built = AuthPolicy(ACCOUNT)
    built.allow_method("GET", "/")

    assert built.build()["policyDocument"]["Statement"][0]["Resource"] == [
        f"arn:aws:execute-api:*:{ACCOUNT}:*/*/GET/"
    ]
    assert built.build()["principalId"] == ""


def test_the_context_is_passed_on() -> None:
    built = AuthPolicy(
        ACCOUNT, principal="u-1", context={"tenant": "t1", "admin": False, "level": 3}
    )
    built.allow_all_methods()

    assert built.build()["context"] == {"tenant": "t1", "admin": False, "level": 3}


def test_a_context_value_api_gateway_refuses_is_a_clear_error() -> None:
    built = AuthPolicy(ACCOUNT, context={"roles": ["a", "b"]})
    built.allow_all_methods()

    with pytest.raises(InvalidPolicy, match=r"context\['roles'\] is a list"):
        built.build()


@pytest.mark.parametrize("resource", ["/orders/{id}", "/orders?x=1", "/ü", ""])
def test_an_invalid_resource_path_is_a_clear_error(resource: str) -> None:
    with pytest.raises(InvalidPolicy, match="invalid resource path"):
        policy().allow_method("GET", resource)


def test_an_invalid_verb_is_a_clear_error() -> None:
    with pytest.raises(InvalidPolicy, match="invalid HTTP verb 'FETCH'"):
        policy().allow_method("FETCH", "/x")


def test_invalid_policy_errors_are_name_errors_as_in_1x() -> None:
    with pytest.raises(NameError):
        policy().deny_method("GET", "/{x}")


def test_an_empty_policy_cannot_be_built() -> None:
    with pytest.raises(InvalidPolicy, match="no statements"):
        policy().build()


def test_a_policy_for_the_method_arn_of_the_event() -> None:
    arn = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/orders/7"

    built = AuthPolicy.from_method_arn(arn, principal="u-1")
    built.allow_method("GET", "/orders/*")

    assert built.build()["policyDocument"]["Statement"][0]["Resource"] == [
        "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/orders/*"
    ]


def test_a_method_arn_that_is_not_one_is_a_clear_error() -> None:
    with pytest.raises(InvalidPolicy, match="is not an API Gateway method ARN"):
        AuthPolicy.from_method_arn("arn:aws:lambda:us-east-1:1:function:f")


def test_auth_policy_is_under_its_1x_module_name() -> None:
    assert runtime.authpolicy.AuthPolicy is AuthPolicy


def test_simple_response_of_an_http_api_authorizer() -> None:
    assert runtime.simple_authorizer_response(True, {"tenant": "t1"}) == {
        "isAuthorized": True,
        "context": {"tenant": "t1"},
    }
    assert runtime.simple_authorizer_response(False) == {
        "isAuthorized": False,
        "context": {},
    }


def test_simple_response_context_reaches_the_route_as_claims() -> None:
    answer = runtime.simple_authorizer_response(True, {"tenant": "t1"})
    event = runtime.testing.http_api_event(
        requestContext={"authorizer": {"lambda": answer["context"]}}
    )

    request = runtime.parse_event(event)
    assert isinstance(request, runtime.HttpRequest)

    assert request.claims == {"tenant": "t1"}


def test_simple_response_needs_a_boolean() -> None:
    with pytest.raises(TypeError, match="must be True or False"):
        runtime.simple_authorizer_response("yes")  # type: ignore[arg-type]
