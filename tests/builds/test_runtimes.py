"""The Lambda runtimes `fleece build` targets, and their platform tags."""

import pytest

from fleece.build.wheels import parse_runtime
from fleece.errors import BadInput


@pytest.mark.parametrize("python", ["python3.12", "python3.13", "python3.14"])
def test_every_runtime_fleece_new_offers_can_be_built(python: str) -> None:
    runtime = parse_runtime(python, "arm64")

    tags = runtime.platform_tags()

    assert runtime.abi == "cp3" + python.removeprefix("python3.")
    assert tags[0] == "manylinux_2_34_aarch64"  # Amazon Linux 2023
    assert "manylinux_2_35_aarch64" not in tags
    assert tags[-1] == "manylinux2014_aarch64"


def test_python311_targets_amazon_linux_2_glibc() -> None:
    tags = parse_runtime("3.11", "x86_64").platform_tags()

    assert tags[0] == "manylinux_2_26_x86_64"
    assert "manylinux1_x86_64" in tags


def test_an_unknown_runtime_is_bad_input() -> None:
    with pytest.raises(BadInput, match=r"unsupported Python 'python3\.9'"):
        parse_runtime("python3.9", "x86_64")
