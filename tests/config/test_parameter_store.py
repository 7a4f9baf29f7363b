"""`render --parameter-store`: one SecureString per leaf in SSM (moto)."""

from pathlib import Path

import boto3

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


def test_prune_deletes_parameters_the_config_no_longer_has(imported: Path) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/svc/old", Value="x", Type="SecureString")
    ssm.put_parameter(Name="/other/keep", Value="x", Type="String")
    run("config", "render", "prod", "--parameter-store", "/svc")
    assert "/svc/old" in parameters("/svc")
    result = run("config", "render", "prod", "--parameter-store", "/svc", "--prune")
    assert "delete /svc/old" in result.stdout
    assert "/svc/old" not in parameters("/svc")
    assert "/svc/foo" in parameters("/svc")
    assert parameters("/other") == {"/other/keep": "x"}


def test_dry_run_prints_the_plan_and_writes_nothing(imported: Path) -> None:
    boto3.client("ssm").put_parameter(Name="/svc/foo", Value="old", Type="SecureString")
    boto3.client("ssm").put_parameter(Name="/svc/gone", Value="x", Type="SecureString")
    result = run(
        "config", "render", "prod", "--parameter-store", "/svc", "--prune", "--dry-run"
    )
    assert result.exit_code == 0
    assert "  overwrite /svc/foo\n" in result.stdout
    assert "  create /svc/password\n" in result.stdout
    assert "  delete /svc/gone\n" in result.stdout
    assert "prod-password" not in result.stdout
    assert parameters("/svc") == {"/svc/foo": "old", "/svc/gone": "x"}


def test_an_invalid_prefix_exits_2_before_any_write(imported: Path) -> None:
    result = run("config", "render", "prod", "--parameter-store", "svc")
    assert result.exit_code == 2
    assert "must start with /" in result.stderr
