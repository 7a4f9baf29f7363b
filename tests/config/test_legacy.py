"""config.yml written by fleece 1.x: ciphertexts made without encryption context.

The files are made here as fleece 1.x made them: each secret encrypted with
KMS (moto) under ``alias/<key>`` and no encryption context, the document
written by ruamel's round-trip dumper (plain style, no ``format:`` line).
"""

import base64
import json
from pathlib import Path

import boto3
import pytest
import yaml

from tests.config.conftest import (
    LOAD,
    LOAD_JSON,
    CountingProxy,
    Keys,
    failing_python_in,
    python_in,
    run,
    sha256_of,
)

VALUES = {
    "prod": {
        "foo": "bar",
        "port": 8080,
        "password": "prod-password",
        "nested": {"inner_var": "value", "a_list": [{"password1": "bob-prod-pw"}, 42]},
    },
    "dev": {
        "foo": "bar",
        "port": 8080,
        "password": "dev-password",
        "nested": {"inner_var": "value", "a_list": [{"password1": "bob-dev-pw"}, 42]},
    },
}


def unbound(plaintext: str, key: str) -> str:
    """A secret as fleece 1.x stored it: KMS ciphertext, no encryption context."""
    blob = boto3.client("kms").encrypt(KeyId=key, Plaintext=plaintext.encode())
    return ":decrypt:" + base64.b64encode(blob["CiphertextBlob"]).decode()


def legacy_config() -> str:
    prod, dev = "alias/prod-config", "alias/dev-config"
    return f"""\
# Our service's configuration.
stages:
  prod:
    environment: prod
    key: prod-config
  /.*/:
    environment: dev
    key: dev-config
config:
  foo: bar
  port: 8080
  password:
    +prod: {unbound("prod-password", prod)}
    +/.*/: {unbound("dev-password", dev)}
  nested:
    inner_var: value
    a_list:
    - password1:
        +prod: {unbound("bob-prod-pw", prod)}
        +/.*/: {unbound("bob-dev-pw", dev)}
    - 42
"""


LEGACY_NOTE = (
    "Note: config.yml is in fleece 1.x's format: its secrets are not bound to "
    "their stage and key path, so one could be moved to another place unnoticed; "
    "`fleece config migrate` rewrites them bound\n"
)


@pytest.fixture
def legacy(service: Path) -> Path:
    """The service with a config.yml written by fleece 1.x."""
    (service / "config.yml").write_text(legacy_config())
    return service


def test_a_1x_config_exports_and_says_once_that_it_is_unbound(legacy: Path) -> None:
    result = run("config", "export")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == LEGACY_NOTE
    exported = yaml.safe_load(result.stdout)
    assert exported["config"]["password"] == {
        "+prod": ":encrypt:prod-password",
        "+/.*/": ":encrypt:dev-password",
    }


@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_a_1x_config_renders(legacy: Path, stage: str) -> None:
    result = run("config", "render", stage, "--json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == VALUES[stage]
    assert result.stderr == LEGACY_NOTE


def test_a_1x_config_renders_a_module_that_decrypts_bound(legacy: Path) -> None:
    result = run("config", "render", "prod", "--python", "--output", "fleece_config.py")

    assert result.exit_code == 0, result.stderr
    assert python_in(legacy, LOAD_JSON) == VALUES["prod"]


def test_migrate_binds_every_secret_to_its_stage_and_path(legacy: Path) -> None:
    before = run("config", "export").stdout

    result = run("config", "migrate")

    assert result.exit_code == 0, result.stderr
    assert "now bound to its stage and key path" in result.stderr
    text = (legacy / "config.yml").read_text()
    assert text.startswith("# Our service's configuration.\nformat: 2  #")
    after = run("config", "export")
    assert after.stdout == before  # the same values, stages and structure
    assert after.stderr == ""  # no longer unbound
    kms = boto3.client("kms")
    blob = yaml.safe_load(text)["config"]["nested"]["a_list"][0]["password1"]["+prod"]
    ciphertext = base64.b64decode(blob[len(":decrypt:") :])
    context = {
        "fleece:stage": "prod",
        "fleece:path": "config.nested.a_list[0].password1.+prod",
    }
    assert (
        kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=context)["Plaintext"]
        == b"bob-prod-pw"
    )
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=ciphertext)


def test_migrate_twice_changes_nothing_the_second_time(legacy: Path) -> None:
    run("config", "migrate")
    before = sha256_of(legacy / "config.yml")

    result = run("config", "migrate")

    assert result.exit_code == 0
    assert "has no fleece 1.x secret: nothing to do" in result.stderr
    assert sha256_of(legacy / "config.yml") == before


def test_a_migration_that_fails_half_way_writes_nothing(
    legacy: Path, kms_proxy: CountingProxy
) -> None:
    before = sha256_of(legacy / "config.yml")
    kms_proxy.failing = "KMSInternalException"
    kms_proxy.failing_target = "TrentService.Encrypt"  # decrypting works, sealing fails

    result = run("config", "migrate")

    assert result.exit_code == 1
    assert "KMSInternalException" in result.stderr
    assert sha256_of(legacy / "config.yml") == before
    assert sorted(p.name for p in legacy.iterdir()) == [
        "config.yml",
        "environments.yml",
    ]


def test_importing_over_a_1x_config_binds_every_secret(legacy: Path) -> None:
    result = run("config", "import", stdin=run("config", "export").stdout)

    assert result.exit_code == 0, result.stderr
    assert "Wrote config.yml: 4 secret(s) encrypted, 0 unchanged" in result.stderr
    assert run("config", "export").stderr == ""


def test_a_1x_ciphertext_slipped_into_a_bound_config_is_refused(
    imported: Path,
) -> None:
    data = yaml.safe_load((imported / "config.yml").read_text())
    data["config"]["password"]["+prod"] = unbound("attacker", "alias/prod-config")
    (imported / "config.yml").write_text(yaml.safe_dump(data, sort_keys=False))

    result = run("config", "render", "prod")

    assert result.exit_code == 1
    assert "could not decrypt config.password.+prod" in result.stderr
    assert "attacker" not in result.stdout + result.stderr


def test_the_generated_module_never_accepts_an_unbound_ciphertext(
    imported: Path, keys: Keys
) -> None:
    # The chunk holds a valid payload (right digest, right key) encrypted
    # without encryption context, as a downgrade would need.
    run("config", "render", "prod", "--python", "--output", "fleece_config.py")
    module = imported / "fleece_config.py"
    text = module.read_text()
    start = text.index("ENCRYPTED_CONFIG: tuple[str, ...] = (")
    end = text.index("\n)\n", start) + 3
    namespace: dict[str, tuple[str, ...]] = {}
    exec(text[start:end], namespace)
    [chunk] = namespace["ENCRYPTED_CONFIG"]
    sha256 = text.split('SHA256 = "')[1].split('"')[0]
    kms = boto3.client("kms")
    context = {
        "fleece:stage": "prod",
        "fleece:chunk": "0",
        "fleece:chunks": "1",
        "fleece:sha256": sha256,
    }
    payload = kms.decrypt(
        CiphertextBlob=base64.b64decode(chunk), EncryptionContext=context
    )
    bare = kms.encrypt(KeyId=keys.prod["Arn"], Plaintext=payload["Plaintext"])
    downgraded = base64.b64encode(bare["CiphertextBlob"]).decode()
    block = f'ENCRYPTED_CONFIG: tuple[str, ...] = ("{downgraded}",)\n'
    module.write_text(text[:start] + block + text[end:])

    result = failing_python_in(imported, LOAD)

    assert "ConfigError" in result.stderr
    assert "InvalidCiphertextException" in result.stderr


def test_a_config_yml_that_lost_its_format_line_still_reads_its_bound_secrets(
    imported: Path,
) -> None:
    config = imported / "config.yml"
    config.write_text(config.read_text().replace("format: 2", "# format: 2"))

    result = run("config", "render", "prod", "--json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["password"] == "prod-password"
    assert result.stderr == LEGACY_NOTE  # said, and `migrate` puts the line back
