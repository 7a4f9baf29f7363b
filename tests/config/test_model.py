"""The open and closed formats, parsed and resolved without AWS."""

import pytest

from fleece.config.formats import dump_yaml, load_text
from fleece.config.model import (
    PerStage,
    Secret,
    check_stage_key,
    child_path,
    parse_config,
    stage_values,
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
    assert [(s.path, s.entry) for s in secrets] == [
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
    assert stage_values(config, "prod") == {"v": "exact"}
    assert stage_values(config, "feature-1") == {"v": "any"}  # first pattern wins
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
        ('{"config": {"a": 1,,}}', "in.yml: line 1: invalid JSON"),
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
        stage_values(config, "dev")


def test_an_unknown_stage_is_an_error() -> None:
    config = parse_config(
        load_text("stages:\n  prod: {environment: p, key: k}\n", "c"), "c", "open"
    )
    with pytest.raises(BadInput, match="unknown stage 'qa'"):
        config.stage_entry("qa")


# -- Which key protects a secret (C4) -----------------------------------------

TWO_KEYS = """\
stages:
  prod: {environment: prod, key: prod-key}
  /.*/: {environment: dev, key: dev-key}
"""


def test_a_pattern_label_that_is_not_a_stage_pattern_cannot_hold_a_secret() -> None:
    message = bad(
        TWO_KEYS
        + "config:\n  token: {'+/prod|staging/': ':encrypt:PRODSECRET', '+/.*/': ':encrypt:d'}\n"
    )
    assert message.startswith('in.yml: config.token["+/prod|staging/"]: ')
    assert "ambiguous (stages it may cover: prod, /.*/)" in message
    assert "PRODSECRET" not in message


def test_the_same_label_is_refused_in_config_yml_too() -> None:
    text = TWO_KEYS + "config:\n  token: {'+/prod|staging/': ':decrypt:QUJD'}\n"
    assert "is not one of the stages: keys" in bad(text, "closed")


def test_a_pattern_label_may_hold_plain_values() -> None:
    config = parse_config(
        load_text(TWO_KEYS + "config:\n  t: {'+/prod|staging/': 1, '+/.*/': 2}\n", "c"),
        "c",
        "open",
    )
    assert stage_values(config, "staging") == {"t": 1}


def test_a_stage_name_label_finds_its_entry_as_the_stage_would() -> None:
    config = parse(
        TWO_KEYS + "config:\n  a: {+staging: ':encrypt:x', +prod: ':encrypt:y'}\n"
    )
    assert [s.entry for s in config.secrets()] == ["/.*/", "prod"]  # type: ignore[attr-defined]


def test_a_stage_may_not_take_a_secret_under_another_stages_key() -> None:
    config = parse_config(
        load_text(TWO_KEYS + "config:\n  token: {'+/.*/': ':encrypt:dev-only'}\n", "c"),
        "c",
        "open",
    )
    values = stage_values(config, "prod")
    with pytest.raises(BadInput) as caught:
        check_stage_key(config, "prod", "prod", values)
    assert str(caught.value) == (
        'config.token["+/.*/"]: stage prod would take this secret of stage entry '
        "/.*/, encrypted with its key 'dev-key', not with stage prod's own key "
        "'prod-key'; render refuses it: give the value a +prod entry"
    )
    check_stage_key(config, "dev", "/.*/", stage_values(config, "dev"))


def test_entries_naming_the_same_key_may_share_secrets() -> None:
    text = (
        "stages:\n  prod: {environment: e, key: k}\n  /.*/: {environment: e, key: k}\n"
        "config:\n  token: {'+/.*/': ':encrypt:shared'}\n"
    )
    config = parse_config(load_text(text, "c"), "c", "open")
    check_stage_key(config, "prod", "prod", stage_values(config, "prod"))


# -- config.yml's format line -------------------------------------------------


def test_config_yml_with_the_format_line_is_bound_and_without_it_1x() -> None:
    body = TWO_KEYS + "config:\n  a: {+prod: ':decrypt:QUJD'}\n"
    assert parse_config(load_text("format: 2\n" + body, "c"), "c", "closed").bound
    assert not parse_config(load_text(body, "c"), "c", "closed").bound


def test_an_unknown_format_is_refused() -> None:
    assert "format: 3 is not a format this fleece reads" in bad("format: 3\n", "closed")


def test_the_open_format_has_no_format_line() -> None:
    assert "unknown top-level key 'format'" in bad("format: 2\n")


# -- Every string survives the YAML round trip (C14) --------------------------


@pytest.mark.parametrize(
    "value",
    [
        "x\x85y",  # NEL: PyYAML wrote it raw and read it back as a space
        "a\u2028b",
        "a\u2029b",
        "two\nlines\x85and NEL",
        "crlf\r\nline",
        "\x0b\x0c\x1c\x1d\x1e",
        "\ufeffbom",
        "trailing space \n",
    ],
)
def test_strings_with_any_line_break_survive_yaml(value: str) -> None:
    assert load_text(dump_yaml({value: [value]}), "x") == {value: [value]}
