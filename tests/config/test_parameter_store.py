"""`render --parameter-store`: one SecureString per leaf in SSM (moto)."""

from pathlib import Path

import boto3
import pytest

from tests.config.conftest import Keys, run


def parameters(prefix: str) -> dict[str, str]:
    ssm = boto3.client("ssm")
    found = ssm.get_parameters_by_path(Path=prefix, Recursive=True, WithDecryption=True)
    return {p["Name"]: p["Value"] for p in found["Parameters"]}


def test_every_leaf_becomes_a_secure_string_with_typed_values(imported: Path) -> None:
    result = run("config", "render", "prod", "--parameter-store", "/svc/prod")
    assert result.exit_code == 0, result.stderr
    assert parameters("/svc/prod") == {
        "/svc/prod/foo": "bar",
        "/svc/prod/port": "8080",
        "/svc/prod/ratio": "0.5",
        "/svc/prod/debug": "false",
        "/svc/prod/password": "prod-password",
        "/svc/prod/nested/inner_var": "value",
        "/svc/prod/nested/a_list": '[{"username1": "bob-prod", "password1": "bob-prod-pw"}, 42]',
    }
    described = boto3.client("ssm").describe_parameters()["Parameters"]
    assert {p["Type"] for p in described} == {"SecureString"}
    assert "prod-password" not in result.stdout + result.stderr


def test_a_custom_kms_key_is_resolved_once_to_its_arn(
    imported: Path, keys: Keys
) -> None:
    run(
        "config",
        "render",
        "prod",
        "--parameter-store",
        "/svc",
        "--ssm-kms-key",
        "dev-config",
    )
    described = boto3.client("ssm").describe_parameters()["Parameters"]
    assert {p["KeyId"] for p in described} == {keys.dev["Arn"]}


def test_every_parameter_fleece_writes_says_so(imported: Path) -> None:
    run("config", "render", "prod", "--parameter-store", "/svc/prod")
    described = boto3.client("ssm").describe_parameters()["Parameters"]
    assert {p["Description"] for p in described} == {
        "Written by fleece config for /svc/prod"
    }


def test_prune_deletes_only_what_fleece_wrote_under_the_prefix(
    imported: Path,
) -> None:
    ssm = boto3.client("ssm")
    run("config", "render", "prod", "--parameter-store", "/svc")
    fleeces = "Written by fleece config for /svc"
    ssm.put_parameter(
        Name="/svc/old", Value="x", Type="SecureString", Description=fleeces
    )
    ssm.put_parameter(Name="/svc/theirs", Value="x", Type="String")
    ssm.put_parameter(
        Name="/svc/sub/other-prefix",
        Value="x",
        Type="String",
        Description="Written by fleece config for /svc/sub",
    )
    ssm.put_parameter(Name="/other/keep", Value="x", Type="String")

    result = run("config", "render", "prod", "--parameter-store", "/svc", "--prune")

    assert result.exit_code == 0, result.stderr
    assert "  delete /svc/old\n" in result.stdout
    assert "2 other parameter(s) under /svc were not written by fleece" in result.stdout
    left = parameters("/svc")
    assert "/svc/old" not in left and "/svc/foo" in left
    assert {"/svc/theirs", "/svc/sub/other-prefix"} <= set(left)
    assert parameters("/other") == {"/other/keep": "x"}


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("/", "needs non-empty segments between its slashes"),
        ("//", "needs non-empty segments between its slashes"),
        ("///", "needs non-empty segments between its slashes"),
        ("/svc//prod", "needs non-empty segments between its slashes"),
        ("/aws/svc", "SSM reserves names starting with aws or ssm"),
    ],
)
def test_a_prefix_without_a_segment_of_its_own_is_refused(
    imported: Path, prefix: str, message: str
) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/theirs", Value="x", Type="String")

    result = run("config", "render", "prod", "--parameter-store", prefix, "--prune")

    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert ssm.get_parameter(Name="/theirs")["Parameter"]["Value"] == "x"


def test_dry_run_lists_exactly_what_would_change(imported: Path) -> None:
    ssm = boto3.client("ssm")
    run("config", "render", "prod", "--parameter-store", "/svc")
    fleeces = "Written by fleece config for /svc"
    ssm.put_parameter(
        Name="/svc/foo", Value="old", Type="SecureString", Overwrite=True
    )  # changed behind fleece's back
    ssm.put_parameter(
        Name="/svc/gone", Value="x", Type="SecureString", Description=fleeces
    )
    ssm.put_parameter(Name="/svc/new-theirs", Value="x", Type="String")
    ssm.delete_parameter(Name="/svc/port")
    before = parameters("/svc")

    result = run(
        "config", "render", "prod", "--parameter-store", "/svc", "--prune", "--dry-run"
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "  update /svc/foo",
        "  create /svc/port",
        "  delete /svc/gone",
        "  (1 other parameter(s) under /svc were not written by fleece: left alone)",
    ]
    assert "3 to change, 5 unchanged" in result.stdout
    assert "prod-password" not in result.stdout
    assert "Dry run: nothing was written." in result.stderr
    assert parameters("/svc") == before


def test_an_upload_that_changes_nothing_writes_nothing(imported: Path) -> None:
    run("config", "render", "prod", "--parameter-store", "/svc")
    versions = {
        p["Name"]: p["Version"]
        for p in boto3.client("ssm").describe_parameters()["Parameters"]
    }

    result = run("config", "render", "prod", "--parameter-store", "/svc")

    assert "0 to change, 7 unchanged" in result.stdout
    after = boto3.client("ssm").describe_parameters()["Parameters"]
    assert {p["Name"]: p["Version"] for p in after} == versions


def test_an_invalid_prefix_exits_2_before_any_write(imported: Path) -> None:
    result = run("config", "render", "prod", "--parameter-store", "svc")
    assert result.exit_code == 2
    assert "must start with /" in result.stderr
