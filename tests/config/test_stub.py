"""runtime_stub/fleece_config.py, imported in place: the API a handler uses."""

import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from fleece.resources import runtime_stub_dir


@pytest.fixture
def fleece_config() -> Iterator[ModuleType]:
    """A fresh copy of the stub module (empty payload)."""
    path = runtime_stub_dir() / "fleece_config.py"
    spec = importlib.util.spec_from_file_location("fleece_config", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("fleece_config", None)


def test_the_stub_holds_an_empty_configuration_until_a_stage_is_rendered(
    fleece_config: ModuleType,
) -> None:
    assert fleece_config.load_config() == {}
    assert fleece_config.STAGE == ""


def test_set_config_feeds_load_config_and_config(fleece_config: ModuleType) -> None:
    fleece_config.set_config({"table": "orders"})
    assert fleece_config.load_config() == {"table": "orders"}
    assert fleece_config.CONFIG == {"table": "orders"}
    fleece_config.set_config(None)
    assert fleece_config.load_config() == {}


def test_config_is_not_an_attribute_until_it_is_asked_for(
    fleece_config: ModuleType,
) -> None:
    assert "CONFIG" not in vars(fleece_config)
    with pytest.raises(AttributeError, match="no attribute 'OTHER'"):
        fleece_config.OTHER  # noqa: B018


def test_a_payload_with_a_wrong_digest_is_refused(fleece_config: ModuleType) -> None:
    with pytest.raises(ValueError, match="fails its digest"):
        fleece_config.open_payload(b"\0" * 32, "0" * 64)
