"""The generated ``template.yaml`` as CloudFormation receives it from SAM.

`sam deploy` sends the template through the SAM transform; the transform of
the SAM CLI's own environment (see the ``sam`` fixture) turns the rendered
template into the resources CloudFormation creates, offline, and these tests
read those: the function's shared settings, the tags of every resource, the
HTTP API's routes, access logs, throttling and CORS.
"""

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from fleece.service.render import load_template, render
from tests.venvs import offline_environ

pytestmark = pytest.mark.slow

# What `sam deploy` sends CloudFormation: the template as SAM transforms it.
# The code's location is known once packaged, so it stands for it, as `sam
# validate` does; the managed policies SAM looks up are AWS's, not fleece's.
_TRANSFORM = """
import json, sys
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

class NoManagedPolicies:
    def load(self):
        return {}

template = yaml_parse(sys.stdin.read())
template["Resources"]["Function"]["Properties"]["CodeUri"] = "s3://bucket/key"
parameters = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}
parameters.update(json.loads(sys.argv[1]))
json.dump(transform(template, parameters, NoManagedPolicies()), sys.stdout)
"""


@pytest.fixture
def deployed(sam: Path) -> Callable[..., dict[str, Any]]:
    """``deployed(parameters={...}, **answers)``: the resources of the template
    rendered with ``answers``, transformed with those parameter values."""

    def transform(
        parameters: dict[str, str] | None = None, **answers: str
    ) -> dict[str, Any]:
        tree = render(load_template("service"), {"project_name": "orders", **answers})
        return _transformed(sam, tree["template.yaml"].decode(), parameters or {})

    return transform


def _transformed(
    sam: Path, template: str, parameters: dict[str, str]
) -> dict[str, Any]:
    """The resources of ``template`` as the SAM transform turns it into CloudFormation's."""
    result = subprocess.run(
        [str(sam.parent / "python"), "-c", _TRANSFORM, json.dumps(parameters)],
        input=template,
        capture_output=True,
        text=True,
        env=offline_environ(AWS_DEFAULT_REGION="us-east-1"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    resources: dict[str, Any] = json.loads(result.stdout)["Resources"]
    return resources


def _shared_settings(tree_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Globals.Function, the Function's own Properties) of a rendered template."""
    template = yaml.load(tree_text, Loader=_TagsAsStrings)
    return (
        template["Globals"]["Function"],
        template["Resources"]["Function"]["Properties"],
    )


class _TagsAsStrings(yaml.SafeLoader):
    """Reads ``!Ref X`` as the string "!Ref"."""


_TagsAsStrings.add_multi_constructor("!", lambda loader, tag, node: f"!{tag}")


def test_the_function_takes_its_shared_settings_from_globals(
    deployed: Callable[..., dict[str, Any]],
) -> None:
    answers = {"architecture": "arm64", "memory_size": "512", "tracing": "false"}
    tree = render(load_template("service"), {"project_name": "orders", **answers})
    shared, own = _shared_settings(tree["template.yaml"].decode())

    function = deployed(**answers)["Function"]["Properties"]

    assert not set(shared) & set(own)
    assert set(own) == {"Description", "CodeUri", "Handler", "Policies"}
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["arm64"]
    assert (function["MemorySize"], function["Timeout"]) == (512, 30)
    assert function["TracingConfig"] == {"Mode": "PassThrough"}
    assert function["Environment"]["Variables"] == {
        "STAGE": {"Ref": "Stage"},
        "LOG_LEVEL": {"Ref": "LogLevel"},
        "SERVICE_NAME": "orders",
    }


@pytest.mark.parametrize("api_style", ["none", "router"])
def test_every_resource_that_takes_tags_carries_the_stage_and_service(
    deployed: Callable[..., dict[str, Any]], api_style: str
) -> None:
    resources = deployed(api_style=api_style)

    tagged = {
        name: _tags(resource)
        for name, resource in resources.items()
        # SAM tags neither the API's permission to call the function nor the
        # queue's event source mapping (its SQS event takes no tags).
        if resource["Type"]
        not in ("AWS::Lambda::Permission", "AWS::Lambda::EventSourceMapping")
    }
    assert len(tagged) == (3 if api_style == "none" else 8)
    for name, tags in tagged.items():
        assert tags["stage"] == {"Ref": "Stage"}, name
        assert tags["service"] == "orders", name


def _tags(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's tags, as a map, however its type holds them."""
    properties = resource["Properties"]
    if resource["Type"] == "AWS::ApiGatewayV2::Api":
        return {
            tag["name"]: tag["x-amazon-apigateway-tag-value"]
            for tag in properties["Body"]["tags"]
        }
    tags = properties["Tags"]
    if isinstance(tags, list):
        return {tag["Key"]: tag["Value"] for tag in tags}
    return dict(tags)


def test_the_http_api_routes_the_root_and_every_path_to_the_function(
    deployed: Callable[..., dict[str, Any]],
) -> None:
    resources = deployed(api_style="router")

    paths = resources["HttpApi"]["Properties"]["Body"]["paths"]
    assert set(paths) == {"/", "/{proxy+}"}
    for path in paths.values():
        (method,) = path
        assert method == "x-amazon-apigateway-any-method"
    permissions = [
        r["Properties"]["SourceArn"]["Fn::Sub"][0]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission"
    ]
    assert sorted(arn.rsplit("}", 1)[1] for arn in permissions) == ["/*/", "/*/*"]


def test_the_http_api_logs_each_request_as_json_to_a_kept_log_group(
    deployed: Callable[..., dict[str, Any]],
) -> None:
    resources = deployed(api_style="router")

    stage = resources["HttpApiApiGatewayDefaultStage"]["Properties"]
    settings = stage["AccessLogSettings"]
    assert settings["DestinationArn"] == {
        "Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]
    }
    line = json.loads(settings["Format"])
    assert {"requestId", "routeKey", "status", "integrationError"} <= set(line)
    for group in ("HttpApiAccessLogGroup", "FunctionLogGroup"):
        kept = resources[group]["Properties"]["RetentionInDays"]
        assert kept == {"Ref": "LogRetentionInDays"}


def test_the_http_api_throttles_every_route_by_default(
    deployed: Callable[..., dict[str, Any]],
) -> None:
    resources = deployed(api_style="openapi")

    stage = resources["HttpApiApiGatewayDefaultStage"]["Properties"]
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }


def test_the_http_api_answers_cors_with_the_templates_one_setting(
    deployed: Callable[..., dict[str, Any]],
) -> None:
    settings = (
        jinja2.Environment(
            loader=jinja2.FileSystemLoader(load_template("service").path)
        )
        .get_template("cors.jinja")
        .module
    )
    origins = "https://app.example.com,http://localhost:3000"

    resources = deployed({"CorsAllowOrigins": origins}, api_style="router")

    cors = resources["HttpApi"]["Properties"]["Body"]["x-amazon-apigateway-cors"]
    # CloudFormation resolves it: no CORS at all when the origins are empty,
    # else the list of origins API Gateway reads.
    assert cors == {
        "Fn::If": [
            "HasCorsOrigins",
            {
                "allowOrigins": {"Fn::Split": [",", origins]},
                "allowMethods": settings.allow_methods,  # type: ignore[attr-defined]
                "allowHeaders": settings.allow_headers,  # type: ignore[attr-defined]
                "maxAge": settings.max_age,  # type: ignore[attr-defined]
            },
            {"Ref": "AWS::NoValue"},
        ]
    }


@pytest.mark.parametrize("api_style", ["router", "openapi"])
def test_the_function_reads_the_http_apis_cors_origins(
    deployed: Callable[..., dict[str, Any]], api_style: str
) -> None:
    resources = deployed(api_style=api_style)

    variables = resources["Function"]["Properties"]["Environment"]["Variables"]
    assert variables["CORS_ALLOW_ORIGINS"] == {"Ref": "CorsAllowOrigins"}


def test_the_plain_handlers_example_triggers_are_correct_once_uncommented(
    sam: Path, tmp_path: Path
) -> None:
    tree = render(load_template("service"), {"project_name": "orders"})
    template = _uncommented(tree["template.yaml"].decode())
    (tmp_path / "template.yaml").write_text(template)

    validated = subprocess.run(
        [str(sam), "validate", "--lint"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=offline_environ(AWS_DEFAULT_REGION="us-east-1"),
        timeout=300,
    )
    resources = _transformed(sam, template, {})

    assert validated.returncode == 0, validated.stdout + validated.stderr
    mappings = [
        r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    assert [m["Properties"]["FunctionResponseTypes"] for m in mappings] == [
        ["ReportBatchItemFailures"]
    ]
    assert resources["UploadsBucket"]["Properties"]["NotificationConfiguration"]
    # SAM's implicit HTTP API, whose route sends GET and the rest to the handler.
    assert resources["ServerlessHttpApi"]["Type"] == "AWS::ApiGatewayV2::Api"


def _uncommented(template: str) -> str:
    """``template`` with its commented examples uncommented, as a user would.

    An example is the comment lines after a bare ``#`` line; uncommenting one
    removes the ``# `` that follows its indentation.
    """
    lines: list[str] = []
    inside = False
    for line in template.splitlines():
        text = line.lstrip()
        indent = line[: len(line) - len(text)]
        if text == "#":
            inside = True
        elif inside and text.startswith("# "):
            lines.append(indent + text[2:])
        else:
            inside = False
            lines.append(line)
    return "\n".join(lines) + "\n"
