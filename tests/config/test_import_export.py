"""`fleece config import` and `export` against KMS in moto."""

import base64
import json
from pathlib import Path

import boto3
import pytest
import yaml

from tests.config.conftest import OPEN_CONFIG, Keys, run


def closed(root: Path) -> dict:  # type: ignore[type-arg]
    data = yaml.safe_load((root / "config.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_import_then_export_round_trips_stages_regexes_and_nested_lists(
    imported: Path,
) -> None:
    result = run("config", "export")
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout) == yaml.safe_load(OPEN_CONFIG)


def test_export_json_is_the_same_document(imported: Path) -> None:
    result = run("config", "export", "--json")
    assert json.loads(result.stdout) == yaml.safe_load(OPEN_CONFIG)


def test_import_reads_json_too(service: Path) -> None:
    source = json.dumps(yaml.safe_load(OPEN_CONFIG))
    assert run("config", "import", stdin=source).exit_code == 0
    assert yaml.safe_load(run("config", "export").stdout) == yaml.safe_load(OPEN_CONFIG)


def test_config_yml_holds_only_ciphertexts(imported: Path) -> None:
    text = (imported / "config.yml").read_text()
    assert "prod-password" not in text and "bob-dev-pw" not in text
    password = closed(imported)["config"]["password"]
    assert password["+prod"].startswith(":decrypt:")
    assert closed(imported)["config"]["port"] == 8080  # typed scalars stay typed


def test_each_secret_is_bound_to_its_stage_entry_and_path(imported: Path) -> None:
    blob = closed(imported)["config"]["password"]["+prod"][len(":decrypt:") :]
    kms = boto3.client("kms")
    plaintext = kms.decrypt(
        CiphertextBlob=base64.b64decode(blob),
        EncryptionContext={
            "fleece:stage": "prod",
            "fleece:path": "config.password.+prod",
        },
    )["Plaintext"]
    assert plaintext == b"prod-password"
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=base64.b64decode(blob))


def test_a_ciphertext_swapped_to_another_path_fails_to_decrypt(imported: Path) -> None:
    data = closed(imported)
    nested = data["config"]["nested"]["a_list"][0]
    data["config"]["password"]["+prod"] = nested["password1"]["+prod"]
    (imported / "config.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    result = run("config", "export")
    assert result.exit_code == 1
    assert "could not decrypt config.password.+prod" in result.stderr
    assert "InvalidCiphertextException" in result.stderr
    assert "bob-prod-pw" not in result.stdout + result.stderr


def test_a_ciphertext_swapped_to_another_stage_fails_to_decrypt(imported: Path) -> None:
    data = closed(imported)
    password = data["config"]["password"]
    password["+prod"] = password["+/.*/"]
    (imported / "config.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    result = run("config", "render", "prod")
    assert result.exit_code == 1
    assert "could not decrypt config.password.+prod" in result.stderr
    assert "dev-password" not in result.stdout + result.stderr


def test_reimporting_unchanged_values_keeps_config_yml_byte_for_byte(
    imported: Path,
) -> None:
    before = (imported / "config.yml").read_bytes()
    result = run("config", "import", stdin=run("config", "export").stdout)
    assert result.exit_code == 0
    assert "unchanged" in result.stderr
    assert (imported / "config.yml").read_bytes() == before


def test_changing_one_secret_changes_only_its_line(imported: Path) -> None:
    before = (imported / "config.yml").read_text().splitlines()
    changed = OPEN_CONFIG.replace(":encrypt:dev-password", ":encrypt:new-dev-password")
    assert run("config", "import", stdin=changed).exit_code == 0
    after = (imported / "config.yml").read_text().splitlines()
    differing = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(differing) == 1 and differing[0][0].lstrip().startswith("+/.*/:")


def test_changing_a_stage_key_reencrypts_its_secrets(imported: Path) -> None:
    old = closed(imported)["config"]["password"]
    swapped = OPEN_CONFIG.replace("key: alias/dev-config", "key: prod-config")
    assert run("config", "import", stdin=swapped).exit_code == 0
    new = closed(imported)["config"]["password"]
    assert new["+prod"] == old["+prod"] and new["+/.*/"] != old["+/.*/"]


@pytest.mark.parametrize(
    "form", ["alias-name", "alias/", "alias-arn", "key-arn", "key-id"]
)
def test_kms_keys_may_be_given_in_every_form(
    service: Path, keys: Keys, form: str
) -> None:
    arn = keys.prod["Arn"]
    key = {
        "alias-name": "prod-config",
        "alias/": "alias/prod-config",
        "alias-arn": arn.split(":key/")[0] + ":alias/prod-config",
        "key-arn": arn,
        "key-id": keys.prod["KeyId"],
    }[form]
    source = OPEN_CONFIG.replace("key: prod-config", f"key: {key}")
    assert run("config", "import", stdin=source).exit_code == 0
    rendered = run("config", "render", "prod", "--json")
    assert json.loads(rendered.stdout)["password"] == "prod-password"


BAD_INPUTS = {
    "plaintext secret": (
        OPEN_CONFIG.replace("  foo: bar", "  foo: :encrypt:hunter2"),
        "config.foo: :encrypt: is only allowed inside a per-stage value",
    ),
    "mixed keys": (
        OPEN_CONFIG.replace("    +prod: :encrypt:prod-password", "    prod: x"),
        "config.password: mixes per-stage keys",
    ),
    "no key": (
        OPEN_CONFIG.replace("    key: prod-config\n", ""),
        "stages.prod: stage has no key",
    ),
    "unknown environment": (
        OPEN_CONFIG.replace("environment: prod", "environment: staging"),
        "stages.prod.environment: unknown environment 'staging'",
    ),
    "bad regex": (
        OPEN_CONFIG.replace("/.*/:\n    environment", "/[/:\n    environment"),
        'stages["/[/"]: invalid regex',
    ),
    "yaml syntax": (
        OPEN_CONFIG.replace("  port: 8080", "\tport: 8080"),
        "<stdin>: line 10: invalid YAML",
    ),
    "unknown key alias": (
        OPEN_CONFIG.replace("key: prod-config", "key: missing-key"),
        "KMS has no such key",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_and_writes_nothing(imported: Path, case: str) -> None:
    source, message = BAD_INPUTS[case]
    before = (imported / "config.yml").read_bytes()
    result = run("config", "import", stdin=source)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback
    assert "hunter2" not in result.stderr and "prod-password" not in result.stderr
    assert (imported / "config.yml").read_bytes() == before
    assert sorted(p.name for p in imported.iterdir()) == [
        "config.yml",
        "environments.yml",
    ]


def test_without_environments_yml_the_standard_credentials_are_used(
    service: Path,
) -> None:
    (service / "environments.yml").unlink()
    assert run("config", "import", stdin=OPEN_CONFIG).exit_code == 0
    assert "dev-password" in run("config", "render", "dev").stdout


def test_an_explicit_environments_file_must_exist(service: Path) -> None:
    result = run("config", "-e", "nowhere.yml", "import", stdin=OPEN_CONFIG)
    assert result.exit_code == 2
    assert "nowhere.yml: no such file" in result.stderr


def test_import_keeps_the_comment_header_of_config_yml(service: Path) -> None:
    (service / "config.yml").write_text(
        "# My service's config.\nstages: {}\nconfig: {}\n"
    )
    assert run("config", "import", stdin=OPEN_CONFIG).exit_code == 0
    assert (
        (service / "config.yml")
        .read_text()
        .startswith("# My service's config.\nstages:")
    )


def test_export_without_config_yml_says_how_to_start(service: Path) -> None:
    result = run("config", "export")
    assert result.exit_code == 2
    assert "create it with `fleece config edit`" in result.stderr
