"""Random nested configs survive import, export and render unchanged, byte for
byte, whatever characters their keys and strings hold."""

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fleece.config.formats import dump_yaml, load_text
from tests.config.conftest import run

STAGES = {
    "prod": {"environment": "prod", "key": "prod-config"},
    "/.*/": {"environment": "dev", "key": "dev-config"},
}

# Every character UTF-8 can carry (not lone surrogates), and every character
# Unicode or YAML takes as a line break, often.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
text = st.text(
    st.characters(exclude_categories=["Cs"]) | st.sampled_from(LINE_BREAKS + "\t "),
    max_size=12,
)
plain_text = text.filter(lambda s: not s.startswith((":encrypt:", ":decrypt:")))
scalars = (
    plain_text
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
)
keys = text.filter(lambda s: not s.startswith("+"))
secrets = st.text(
    st.characters(exclude_categories=["Cs"]) | st.sampled_from(LINE_BREAKS),
    min_size=1,
    max_size=20,
).map(lambda s: ":encrypt:" + s)


def per_stage(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"+prod": values, "+/.*/": values})


values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(keys, children, max_size=3)
    | per_stage(secrets | children),
    max_leaves=8,
)
configs = st.dictionaries(keys, values, max_size=4)


def for_stage(value: Any, label: str) -> Any:
    """The expected rendering: per-stage choice, secrets in plain text."""
    if isinstance(value, dict):
        if value and all(k.startswith("+") for k in value):
            return for_stage(value[label], label)
        return {k: for_stage(v, label) for k, v in value.items()}
    if isinstance(value, list):
        return [for_stage(v, label) for v in value]
    if isinstance(value, str) and value.startswith(":encrypt:"):
        return value[len(":encrypt:") :]
    return value


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(config=configs)
@example(  # PyYAML once wrote U+0085 raw in quotes and read it back as a space
    config={
        "nel\x85key": "x\x85y",
        "breaks": ["a\u2028b", "c\u2029d", "e\r\nf\x0bg"],
        "secret": {"+prod": ":encrypt:p\x85w", "+/.*/": ":encrypt:\u2028"},
    }
)
def test_import_export_and_render_round_trip(
    service: Path, config: dict[str, Any]
) -> None:
    document = {"stages": STAGES, "config": config}
    result = run("config", "import", stdin=dump_yaml(document))
    assert result.exit_code == 0, result.stderr
    exported = run("config", "export")
    assert load_text(exported.stdout, "export") == document
    for stage, label in (("prod", "+prod"), ("dev", "+/.*/")):
        rendered = run("config", "render", stage, "--json")
        assert rendered.exit_code == 0, rendered.stderr
        assert json.loads(rendered.stdout) == for_stage(config, label)
