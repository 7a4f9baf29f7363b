"""`fleece config import` and `export` against KMS in moto."""

import base64
import json
import subprocess
from pathlib import Path

import boto3
import pytest
import yaml

from fleece.files import atomic_write
from fleece.resources import templates_dir
from tests.config.conftest import (
    OPEN_CONFIG,
    CountingProxy,
    Keys,
    run,
    sha256_of,
)


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
        .startswith("# My service's config.\nformat: 2  #")
    )


def test_export_without_config_yml_says_how_to_start(service: Path) -> None:
    result = run("config", "export")
    assert result.exit_code == 2
    assert "create it with `fleece config edit`" in result.stderr


# -- Nothing in, nothing lost (an export that failed upstream of a pipe) ----

WIPES = {
    "empty": "",
    "whitespace": "\n\n",
    "comments only": "# nothing here\n# at all\n",
    "empty JSON object": "{}",
    "null document": "null\n",
    "no config section": "stages:\n  prod: {environment: prod, key: prod-config}\n",
    "no stages section": "config:\n  foo: bar\n",
    "empty sections": "stages: {}\nconfig: {}\n",
}


@pytest.mark.parametrize("case", sorted(WIPES))
def test_input_with_nothing_in_it_never_replaces_a_config(
    imported: Path, case: str
) -> None:
    before = sha256_of(imported / "config.yml")

    result = run("config", "import", stdin=WIPES[case])

    assert result.exit_code == 2, result.stderr
    assert "importing it would empty config.yml; nothing was written" in result.stderr
    assert "--allow-empty" in result.stderr
    assert result.stderr.count("\n") == 1
    assert sha256_of(imported / "config.yml") == before


def test_a_failed_export_piped_into_import_loses_nothing(
    imported: Path, kms_proxy: CountingProxy
) -> None:
    before = sha256_of(imported / "config.yml")
    kms_proxy.failing = "ExpiredTokenException"

    exported = run("config", "export")
    imported_again = run("config", "import", stdin=exported.stdout)

    assert exported.exit_code == 1 and exported.stdout == ""
    assert imported_again.exit_code == 2
    assert sha256_of(imported / "config.yml") == before


def test_allow_empty_empties_config_yml_on_purpose(imported: Path) -> None:
    result = run("config", "import", "--allow-empty", stdin="")

    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(run("config", "export").stdout) == {
        "stages": {},
        "config": {},
    }


def test_an_empty_input_may_start_a_new_config(service: Path) -> None:
    assert run("config", "import", stdin="stages: {}\nconfig: {}\n").exit_code == 0
    assert (service / "config.yml").exists()


# -- Bounded, unambiguous input ---------------------------------------------


def test_binary_input_is_one_line_and_exit_2(imported: Path) -> None:
    before = sha256_of(imported / "config.yml")
    source = imported / "blob.bin"
    source.write_bytes(bytes(range(256)) * 4)

    result = run("config", "import", str(source))

    assert result.exit_code == 2
    assert "blob.bin: not UTF-8 text" in result.stderr
    assert result.stderr.count("\n") == 1
    assert sha256_of(imported / "config.yml") == before


@pytest.mark.parametrize(
    "document",
    [
        "config:\n  a: " + "[" * 5000 + "]" * 5000 + "\n",
        '{"config": {"a": ' + "[" * 5000 + "]" * 5000 + "}}",
        "config:\n" + "".join("  " * depth + f"k{depth}:\n" for depth in range(1, 600)),
    ],
    ids=["yaml flow", "json", "yaml block"],
)
def test_deep_nesting_is_refused_with_one_line(imported: Path, document: str) -> None:
    result = run("config", "import", stdin=document)

    assert result.exit_code == 2
    assert "nested deeper than 32 levels" in result.stderr
    assert result.stderr.count("\n") == 1


def test_input_over_a_mebibyte_is_refused(imported: Path) -> None:
    result = run("config", "import", stdin="config:\n  a: '" + "x" * (1 << 20) + "'\n")

    assert result.exit_code == 2
    assert "<stdin>: larger than the 1024 KiB fleece reads" in result.stderr


def test_yaml_aliases_are_refused_so_an_alias_bomb_cannot_expand(
    imported: Path,
) -> None:
    # The 487-byte document that once expanded to a 17.5 MB config.yml.
    bomb = "config:\n  a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n"
        for i in range(8)
    )
    before = sha256_of(imported / "config.yml")

    result = run("config", "import", stdin=bomb)

    assert result.exit_code == 2
    assert "line 3: invalid YAML: alias *a is not allowed" in result.stderr
    assert sha256_of(imported / "config.yml") == before


def test_a_hostile_config_yml_with_aliases_is_refused_too(imported: Path) -> None:
    config = imported / "config.yml"
    config.write_text(config.read_text() + "  copy: &c [1]\n  again: *c\n")

    result = run("config", "render", "prod")

    assert result.exit_code == 2
    assert "config.yml: line" in result.stderr and "alias *c" in result.stderr


def test_duplicate_keys_in_json_are_an_error_as_in_yaml(imported: Path) -> None:
    source = '{"stages": {}, "config": {"foo": 1, "foo": 2}}'

    result = run("config", "import", stdin=source)

    assert result.exit_code == 2
    assert "<stdin>: invalid JSON: duplicate key 'foo'" in result.stderr


def test_flow_style_yaml_is_yaml_not_invalid_json(service: Path) -> None:
    source = (
        "{stages: {prod: {environment: prod, key: prod-config}}, "
        "config: {foo: bar, password: {+prod: ':encrypt:s3cret'}}}"
    )

    result = run("config", "import", stdin=source)

    assert result.exit_code == 0, result.stderr
    assert json.loads(run("config", "render", "prod", "--json").stdout) == {
        "foo": "bar",
        "password": "s3cret",
    }


def test_a_missing_kms_key_is_found_at_import_even_without_secrets(
    service: Path,
) -> None:
    source = (
        "stages:\n  prod: {environment: prod, key: no-such-alias}\n"
        "config:\n  foo: bar\n"
    )

    result = run("config", "import", stdin=source)

    assert result.exit_code == 2
    assert "stages.prod.key: could not find KMS key 'no-such-alias'" in result.stderr
    assert "KMS has no such key" in result.stderr
    assert not (service / "config.yml").exists()


def test_an_asymmetric_key_is_refused_at_import(service: Path) -> None:
    kms = boto3.client("kms")
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    source = (
        f"stages:\n  prod: {{environment: prod, key: {key['KeyMetadata']['Arn']}}}\n"
        "config:\n  foo: bar\n"
    )

    result = run("config", "import", stdin=source)

    assert result.exit_code == 2
    assert "fleece needs a symmetric encryption key" in result.stderr


def test_the_service_gitignore_covers_fleeces_temp_files(tmp_path: Path) -> None:
    gitignore = templates_dir() / "service" / "project" / ".gitignore"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_bytes(gitignore.read_bytes())
    atomic_write(tmp_path / "config.yml", "config: {}\n")
    leftover = tmp_path / ".config.yml.k3j4h5.tmp"  # what a killed write leaves
    leftover.write_text("ciphertext")

    ignored = subprocess.run(
        ["git", "check-ignore", "-q", leftover.name], cwd=tmp_path, check=False
    )
    tracked = subprocess.run(
        ["git", "check-ignore", "-q", "config.yml"], cwd=tmp_path, check=False
    )

    assert ignored.returncode == 0
    assert tracked.returncode == 1
