"""The open and closed formats, parsed and resolved without AWS."""

import pytest

from fleece.config.formats import dump_yaml, load_text
from fleece.config.model import (
    PerStage,
    Secret,
    child_path,
    parse_config,
    resolve_stage,
    to_data,
)
from fleece.errors import BadInput

STAGES = """\
stages:
  prod: {environment: prod, key: prod-key}
  /feature-.*/: {environment: dev, key: dev-key}
  /.*/: {environment: dev, key: other-key}
"""


def parse(text: str, fmt: str = "open") -> object:
    return parse_config(load_text(text, "in.yml"), "in.yml", fmt)  # type: ignore[arg-type]


def bad(text: str, fmt: str = "open") -> str:
    with pytest.raises(BadInput) as caught:
        parse(text, fmt)
    return str(caught.value)


def test_secrets_know_their_path_and_stage_entry() -> None:
    config = parse_config(
        load_text(
            STAGES
            + "config:\n  db:\n    - pw: {+prod: ':encrypt:s3cr3t-a', +feature-1: ':encrypt:b'}\n",
            "in.yml",
        ),
        "in.yml",
        "open",
    )
    secrets = config.secrets()
    assert [(s.path, s.stage) for s in secrets] == [
        ("config.db[0].pw.+prod", "prod"),
        ("config.db[0].pw.+feature-1", "/feature-.*/"),
    ]
    assert "s3cr3t" not in repr(secrets[0])  # plaintext never in a repr


def test_paths_quote_keys_that_are_not_plain_words() -> None:
    assert child_path("config", "a.b") == 'config["a.b"]'
    assert child_path("config", "+/.*/") == 'config["+/.*/"]'
    assert child_path("config", "name_1") == "config.name_1"


def test_exact_stage_wins_over_patterns_then_file_order() -> None:
    config = parse_config(
        load_text(
            STAGES
            + "config:\n  v: {'+/.*/': any, '+/feature-.*/': feature, +prod: exact}\n",
            "in.yml",
        ),
        "in.yml",
        "open",
    )
    assert resolve_stage(config, "prod") == {"v": "exact"}
    assert resolve_stage(config, "feature-1") == {"v": "any"}  # first pattern wins
    assert config.stage_entry("feature-1").name == "/feature-.*/"


def test_yaml_scalars_follow_yaml_1_2_and_stay_typed() -> None:
    data = load_text("a: yes\nb: 0777\nc: 1:30\nd: 2024-01-01\ne: 1.5\nf: true\n", "x")
    assert data == {
        "a": "yes",
        "b": 777,
        "c": "1:30",
        "d": "2024-01-01",
        "e": 1.5,
        "f": True,
    }
    tricky = ["yes", "0o17", "1e5", "1_000", "null", "", "multi\nline\n", "+1", ".5"]
    assert load_text(dump_yaml({"s": tricky}), "x") == {"s": tricky}


def test_per_stage_values_become_per_stage_nodes() -> None:
    config = parse_config(
        load_text(STAGES + "config:\n  x: {+prod: 1, '+/.*/': [1, 2]}\n", "in"),
        "in",
        "open",
    )
    assert config.config["x"] == PerStage({"prod": 1, "/.*/": [1, 2]})
    assert to_data(config.config, lambda s: None) == {
        "x": {"+prod": 1, "+/.*/": [1, 2]}
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "config:\n  password: ':encrypt:hunter2'\n",
            "config.password: :encrypt: is only allowed inside a per-stage value",
        ),
        (
            "config:\n  a: [':encrypt:hunter2']\n",
            "config.a[0]: :encrypt: is only allowed",
        ),
        (
            STAGES + "config:\n  a: {+prod: 1, plain: 2}\n",
            "config.a: mixes per-stage keys",
        ),
        ("stages:\n  prod: {environment: prod}\n", "stages.prod: stage has no key"),
        (
            "stages:\n  '/[a-/': {environment: e, key: k}\n",
            'stages["/[a-/"]: invalid regex',
        ),
        (STAGES + "config:\n  a: {'+/(/': 1}\n", 'config.a["+/(/"]: invalid regex'),
        (
            "stages:\n  dev: {environment: d, key: k}\nconfig:\n  a: {+prod: ':encrypt:x'}\n",
            "config.a.+prod: no entry of stages: matches +prod",
        ),
        ("config:\n  a: [1,\n", "in.yml: line 3: invalid YAML"),
        ('{"config": {"a": 1,}}', "in.yml: line 1: invalid JSON"),
        ("config:\n  a: 1\n  a: 2\n", "line 3: invalid YAML: duplicate key 'a'"),
        ("config:\n  1: x\n", 'config["1"]: keys must be strings'),
        ("config:\n  a: .nan\n", "config.a: NaN and infinity"),
        (
            STAGES + "config:\n  a: {+prod: ':decrypt:AAAA'}\n",
            "config.a.+prod: holds a :decrypt: ciphertext",
        ),
        ("surprise: 1\n", "unknown top-level key 'surprise'"),
        (
            STAGES + "config:\n  a: {+prod: ':encrypt:'}\n",
            "config.a.+prod: empty secret",
        ),
    ],
)
def test_bad_open_config_names_the_offending_path(text: str, message: str) -> None:
    assert message in bad(text)


def test_errors_never_quote_the_secret() -> None:
    assert "hunter2" not in bad("config:\n  password: ':encrypt:hunter2'\n")


def test_closed_format_rejects_plaintext_secrets() -> None:
    message = bad(STAGES + "config:\n  a: {+prod: ':encrypt:x'}\n", "closed")
    assert "config.a.+prod: holds an unencrypted :encrypt: secret" in message


def test_closed_format_reads_ciphertexts() -> None:
    config = parse_config(
        load_text(STAGES + "config:\n  a: {+prod: ':decrypt:QUJD'}\n", "c"),
        "c",
        "closed",
    )
    assert config.secrets() == [Secret("config.a.+prod", "prod", ciphertext="QUJD")]


def test_a_stage_without_a_value_is_an_error_with_the_path() -> None:
    config = parse_config(
        load_text(STAGES + "config:\n  a: {+prod: 1}\n", "c"), "c", "open"
    )
    with pytest.raises(BadInput, match=r"config.a: no value for stage 'dev'"):
        resolve_stage(config, "dev")


def test_an_unknown_stage_is_an_error() -> None:
    config = parse_config(
        load_text("stages:\n  prod: {environment: p, key: k}\n", "c"), "c", "open"
    )
    with pytest.raises(BadInput, match="unknown stage 'qa'"):
        resolve_stage(config, "qa")
