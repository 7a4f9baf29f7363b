"""`fleece config render`: plain YAML/JSON, the encrypted payload, fleece_config.py."""

import base64
import hashlib
import json
import math
import random
import subprocess
import sys
import zlib
from pathlib import Path

import boto3
import pytest
import yaml

from fleece.service.generated import parse_generated
from fleece.service.layout import load_settings
from tests.config.conftest import (
    LOAD,
    LOAD_JSON,
    OPEN_CONFIG,
    CountingProxy,
    Keys,
    failing_python_in,
    python_in,
    run,
    sha256_of,
)

PROD = {
    "foo": "bar",
    "port": 8080,
    "ratio": 0.5,
    "debug": False,
    "password": "prod-password",
    "nested": {
        "inner_var": "value",
        "a_list": [{"username1": "bob-prod", "password1": "bob-prod-pw"}, 42],
    },
}


def test_render_prints_yaml_by_default(imported: Path) -> None:
    result = run("config", "render", "prod")
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout) == PROD


def test_render_json_picks_pattern_values_for_other_stages(imported: Path) -> None:
    data = json.loads(run("config", "render", "feature-7", "--json").stdout)
    assert data["password"] == "dev-password"
    assert data["nested"]["a_list"][0] == {
        "username1": "bob-dev",
        "password1": "bob-dev-pw",
    }


def test_render_encrypt_gives_chunks_bound_to_stage_index_count_and_digest(
    imported: Path,
) -> None:
    payload = json.loads(run("config", "render", "prod", "--encrypt").stdout)
    kms = boto3.client("kms")
    count = len(payload["chunks"])
    parts = [
        kms.decrypt(
            CiphertextBlob=base64.b64decode(chunk),
            EncryptionContext={
                "fleece:stage": "prod",
                "fleece:chunk": str(index),
                "fleece:chunks": str(count),
                "fleece:sha256": payload["sha256"],
            },
        )["Plaintext"]
        for index, chunk in enumerate(payload["chunks"])
    ]
    joined = b"".join(parts)
    assert hashlib.sha256(joined).hexdigest() == payload["sha256"]
    assert json.loads(zlib.decompress(joined[payload["salt_bytes"] :])) == PROD
    assert "prod-password" not in json.dumps(payload)


@pytest.mark.parametrize(
    ("stage", "source", "message"),
    [
        ("qa", OPEN_CONFIG.replace("/.*/:", "/dev-.*/:"), "unknown stage 'qa'"),
        (
            "feature-1",
            OPEN_CONFIG.replace("        +/.*/: bob-dev\n", ""),
            "config.nested.a_list[0].username1: no value for stage 'feature-1'",
        ),
    ],
)
def test_render_of_a_stage_without_values_exits_2(
    service: Path, stage: str, source: str, message: str
) -> None:
    assert run("config", "import", stdin=source).exit_code == 0
    result = run("config", "render", stage)
    assert result.exit_code == 2
    assert message in result.stderr


def test_the_module_decrypts_in_a_fresh_process_with_one_call_per_chunk(
    imported: Path, aws: str
) -> None:
    (imported / "src").mkdir()
    result = run(
        "config", "render", "prod", "--python", "--output", "src/fleece_config.py"
    )
    assert result.exit_code == 0, result.stderr
    with CountingProxy(aws) as proxy:
        loaded = python_in(
            imported / "src",
            LOAD_JSON,
            proxy.url,
        )
    assert loaded == PROD
    assert proxy.count("TrentService.Decrypt") == 1


def test_config_is_still_importable_by_name_for_code_written_for_the_original(
    imported: Path,
) -> None:
    run("config", "render", "prod", "--python", "--output", "fleece_config.py")
    code = "import json; from fleece_config import CONFIG; print(json.dumps(CONFIG))"
    assert python_in(imported, code) == PROD


def test_a_100_kb_config_takes_one_concurrent_round_trip_and_none_at_import(
    imported: Path, aws: str
) -> None:
    rng = random.Random(4)
    big = [f"{rng.getrandbits(64):016x}" for _ in range(5300)]  # >100 KB of JSON
    source = OPEN_CONFIG + "  big:\n" + "".join(f"  - '{item}'\n" for item in big)
    assert run("config", "import", stdin=source).exit_code == 0
    run("config", "render", "prod", "--python", "--output", "fleece_config.py")
    plain = json.dumps({**PROD, "big": big}, separators=(",", ":")).encode()
    assert len(plain) > 100_000
    chunks = math.ceil((16 + len(zlib.compress(plain, 9))) / 4096)
    assert chunks > 1

    with CountingProxy(aws, delay=0.4) as proxy:
        python_in(imported, "import fleece_config; print('{}')", proxy.url)
        assert proxy.calls == []  # importing never talks to KMS
        loaded = python_in(
            imported,
            "import json, time, fleece_config\n"
            "start = time.monotonic()\n"
            "config = fleece_config.CONFIG\n"
            "print(json.dumps({'config': config, 'took': time.monotonic() - start}))",
            proxy.url,
        )
    assert loaded["config"]["big"] == big
    assert proxy.count("TrentService.Decrypt") == chunks
    # Each call takes 0.4 s: one after the other would be chunks * 0.4 s
    # (about 5 s); half of that leaves room for importing boto3 on a loaded
    # machine.
    assert loaded["took"] < 0.4 * chunks / 2
    assert proxy.most_in_flight > chunks / 2


def test_the_module_header_names_version_stage_and_config_digest(
    imported: Path,
) -> None:
    run("config", "render", "feature-3", "--python", "--output", "fleece_config.py")
    generated = parse_generated((imported / "fleece_config.py").read_text())
    assert generated is not None and not generated.edited
    assert generated.fields == {
        "stage": "feature-3",
        "config-sha256": hashlib.sha256(
            (imported / "config.yml").read_bytes()
        ).hexdigest(),
    }
    import fleece

    assert generated.version == fleece.__version__


def test_a_tampered_module_fails_naming_its_stage_and_key(
    imported: Path, keys: Keys
) -> None:
    run("config", "render", "prod", "--python", "--output", "fleece_config.py")
    module = imported / "fleece_config.py"
    text = module.read_text().replace('STAGE = "prod"', 'STAGE = "dev"')
    module.write_text(text)
    result = failing_python_in(imported, LOAD)
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "fleece_config.ConfigError: fleece_config: cannot decrypt the configuration "
        f"of stage 'dev' with KMS key {keys.prod['Arn']}: InvalidCiphertextException: "
        "the payload was altered, or made for another stage or key; render it again "
        "with `fleece config render STAGE --python`"
    )


SERVICE_PYPROJECT = """\
[tool.ruff.lint]
extend-select = ["I", "UP", "B"]

[tool.mypy]
strict = true
python_version = "3.11"

[[tool.mypy.overrides]]
module = ["boto3.*", "botocore.*"]
ignore_missing_imports = true
"""


def test_the_generated_module_is_black_ruff_and_mypy_strict_clean(
    imported: Path,
) -> None:
    run("config", "render", "prod", "--python", "--output", "src/fleece_config.py")
    (imported / "pyproject.toml").write_text(SERVICE_PYPROJECT)
    (imported / "src" / "handler.py").write_text(
        "from fleece_config import CONFIG, load_config\n\n\n"
        "def port() -> int:\n"
        '    value: int = load_config()["port"] + len(CONFIG)\n'
        "    return value\n"
    )
    for tool in (
        ["black", "--check", "--quiet", "src"],
        ["ruff", "check", "--quiet", "src"],
        ["mypy", "src/fleece_config.py", "src/handler.py"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", *tool], cwd=imported, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{tool[0]}: {result.stdout}{result.stderr}"


def test_output_records_the_module_and_import_rerenders_it(imported: Path) -> None:
    (imported / "src").mkdir()
    run("config", "render", "dev", "--python", "--output", "src/fleece_config.py")
    settings = load_settings(imported)
    assert [(m.stage, m.path) for m in settings.config_modules] == [
        ("dev", "src/fleece_config.py")
    ]
    changed = OPEN_CONFIG.replace("foo: bar", "foo: baz")
    result = run("config", "import", stdin=changed)
    assert "Re-rendered" in result.stderr
    header = parse_generated((imported / "src" / "fleece_config.py").read_text())
    assert header is not None
    digest = hashlib.sha256((imported / "config.yml").read_bytes()).hexdigest()
    assert header.fields["config-sha256"] == digest
    code = LOAD_JSON
    assert python_in(imported / "src", code)["foo"] == "baz"


def test_an_unchanged_import_leaves_modules_alone(imported: Path) -> None:
    run("config", "render", "dev", "--python", "--output", "fleece_config.py")
    before = (imported / "fleece_config.py").read_bytes()
    run("config", "import", stdin=OPEN_CONFIG)
    assert (imported / "fleece_config.py").read_bytes() == before


def test_a_module_outside_the_service_is_not_recorded(
    imported: Path, tmp_path: Path
) -> None:
    result = run("config", "render", "dev", "--python", "-o", str(tmp_path / "x.py"))
    assert "not kept current" in result.stderr
    assert load_settings(imported).config_modules == []


def test_a_secret_whose_key_would_be_guessed_is_refused_at_import(
    service: Path,
) -> None:
    # prod has its own key; "/prod|staging/" is no stages: key, and matched as
    # text it once picked the dev key for a prod secret.
    source = OPEN_CONFIG + (
        "  token:\n    +/prod|staging/: :encrypt:PRODSECRET\n    +/.*/: :encrypt:dev\n"
    )

    result = run("config", "import", stdin=source)

    assert result.exit_code == 2
    assert 'config.token["+/prod|staging/"]' in result.stderr
    assert "stages it may cover: prod, /.*/" in result.stderr
    assert "PRODSECRET" not in result.stderr
    assert not (service / "config.yml").exists()


def test_render_refuses_a_secret_encrypted_with_another_stages_key(
    service: Path,
) -> None:
    source = OPEN_CONFIG + "  token:\n    +/.*/: :encrypt:dev-only\n"
    assert run("config", "import", stdin=source).exit_code == 0

    refused = run("config", "render", "prod")
    allowed = run("config", "render", "dev", "--json")

    assert refused.exit_code == 2
    assert (
        'config.token["+/.*/"]: stage prod would take this secret of stage entry /.*/'
        in refused.stderr
    )
    assert "dev-only" not in refused.stdout + refused.stderr
    assert json.loads(allowed.stdout)["token"] == "dev-only"


def test_an_unwritable_output_is_one_line_and_exit_2(imported: Path) -> None:
    result = run(
        "config", "render", "prod", "--python", "--output", "config.yml/module.py"
    )

    assert result.exit_code == 2
    assert result.stderr.startswith("Error: cannot write config.yml/module.py: ")
    assert result.stderr.count("\n") == 1
    assert load_settings(imported).config_modules == []


def test_removing_a_stage_with_a_module_names_the_files_and_the_way_out(
    imported: Path,
) -> None:
    (imported / "src").mkdir()
    run("config", "render", "qa", "--python", "--output", "src/fleece_config.py")
    before = sha256_of(imported / "config.yml")
    without_qa = OPEN_CONFIG.replace("/.*/", "/dev-.*/")  # nothing matches qa now

    result = run("config", "import", stdin=without_qa)

    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: src/fleece_config.py is kept current for stage qa "
        "(.fleece/settings.yml), which the new config cannot render: "
        "unknown stage 'qa'"
    )
    assert "run `fleece config forget qa` first" in result.stderr
    assert sha256_of(imported / "config.yml") == before


def test_forget_returns_the_service_module_to_the_stub_and_unlists_it(
    imported: Path,
) -> None:
    (imported / "src").mkdir()
    run("config", "render", "qa", "--python", "--output", "src/fleece_config.py")
    run("config", "render", "qa", "--python", "--output", "other_config.py")
    without_qa = OPEN_CONFIG.replace("/.*/", "/dev-.*/")

    forgotten = run("config", "forget", "qa")
    reimported = run("config", "import", stdin=without_qa)

    assert forgotten.exit_code == 0, forgotten.stderr
    assert forgotten.stderr == (
        "src/fleece_config.py: now the empty stub of a new service; removed from "
        ".fleece/settings.yml.\n"
        "other_config.py: deleted; removed from .fleece/settings.yml.\n"
    )
    assert load_settings(imported).config_modules == []
    assert not (imported / "other_config.py").exists()
    code = LOAD_JSON
    assert python_in(imported / "src", code) == {}
    assert reimported.exit_code == 0, reimported.stderr


def test_forget_of_a_stage_without_a_module_says_what_is_recorded(
    imported: Path,
) -> None:
    run("config", "render", "dev", "--python", "--output", "fleece_config.py")

    result = run("config", "forget", "prod")

    assert result.exit_code == 2
    assert (
        ".fleece/settings.yml records no module for stage 'prod' "
        "(it records: fleece_config.py (dev))"
    ) in result.stderr
