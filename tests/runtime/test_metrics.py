"""fleece_runtime.Metrics: EMF lines checked against the specification's schema."""

import asyncio
import io
import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.outbound_servers import events

SCHEMA = json.loads((Path(__file__).parent / "emf_schema.json").read_text())
NOW = 1_700_000_000.123


class Context:
    """The part of a Lambda context that metrics read."""

    function_name = "orders-prod-api"


def emf_documents(out: io.StringIO) -> list[dict[str, Any]]:
    """Every line written, each checked as an EMF document (schema and references)."""
    documents = []
    for line in out.getvalue().splitlines():
        document = json.loads(line)
        jsonschema.validate(document, SCHEMA)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                for name in dimension_set:
                    value = document[name]
                    assert isinstance(value, str) and 0 < len(value) <= 1024, name
            for definition in directive["Metrics"]:
                value = document[definition["Name"]]
                values = value if isinstance(value, list) else [value]
                assert 0 < len(values) <= 100
                assert all(
                    isinstance(v, int | float) and math.isfinite(v) for v in values
                )
        documents.append(document)
    return documents


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def metrics(out: io.StringIO) -> runtime.Metrics:
    return runtime.Metrics("Orders", service="orders", stream=out, clock=lambda: NOW)


def test_an_invocation_writes_one_line_of_its_metrics(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> str:
        metrics.add("OrderPlaced", 1, "Count")
        metrics.add("Latency", 12.5, "Milliseconds", resolution=1)
        metrics.add_dimension("channel", "web")
        metrics.add_metadata("order_id", "o-7")
        return "done"

    assert handler({}, Context()) == "done"

    (document,) = emf_documents(out)
    assert document == {
        "_aws": {
            "Timestamp": 1_700_000_000_123,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Orders",
                    "Dimensions": [["service", "channel"]],
                    "Metrics": [
                        {"Name": "OrderPlaced", "Unit": "Count"},
                        {
                            "Name": "Latency",
                            "Unit": "Milliseconds",
                            "StorageResolution": 1,
                        },
                    ],
                }
            ],
        },
        "service": "orders",
        "channel": "web",
        "order_id": "o-7",
        "OrderPlaced": 1,
        "Latency": 12.5,
    }


def test_values_of_one_metric_are_written_together(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    for value in (3, 4.5, 0):
        metrics.add("ItemsInCart", value, "Count")

    metrics.flush()

    (document,) = emf_documents(out)
    assert document["ItemsInCart"] == [3, 4.5, 0]


def test_the_line_is_written_when_the_handler_raises(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    @metrics.log_metrics()
    def handler(event: dict[str, Any], context: Any) -> None:
        metrics.add("PaymentFailed", 1, "Count")
        raise RuntimeError("card declined")

    with pytest.raises(RuntimeError, match="card declined"):
        handler({}, Context())

    (document,) = emf_documents(out)
    assert document["PaymentFailed"] == 1


def test_an_async_handler_s_line_is_written_when_its_coroutine_ends(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    @metrics.log_metrics
    async def handler(event: dict[str, Any], context: Any) -> str:
        await asyncio.sleep(0)
        metrics.add("OrderPlaced", 1, "Count")
        return "placed"

    assert asyncio.run(handler({}, Context())) == "placed"

    (document,) = emf_documents(out)
    assert document["OrderPlaced"] == 1


def test_raise_on_empty_keeps_the_handler_s_own_exception(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    @metrics.log_metrics(raise_on_empty=True)
    def handler(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("card declined")

    with pytest.raises(RuntimeError, match="card declined"):
        handler({}, Context())
    assert out.getvalue() == ""


def test_a_hundred_metrics_fill_a_line_and_the_rest_go_in_the_next(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    for number in range(150):
        metrics.add(f"Metric{number}", number, "Count")
        if number == 99:
            assert len(emf_documents(out)) == 1

    metrics.flush()

    first, second = emf_documents(out)
    assert len(first["_aws"]["CloudWatchMetrics"][0]["Metrics"]) == 100
    assert len(second["_aws"]["CloudWatchMetrics"][0]["Metrics"]) == 50
    assert second["Metric149"] == 149


def test_a_hundred_values_of_one_metric_fill_a_line(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    for number in range(130):
        metrics.add("Latency", number, "Milliseconds")
    metrics.flush()

    first, second = emf_documents(out)
    assert first["Latency"] == list(range(100))
    assert second["Latency"] == list(range(100, 130))


def test_dimensions_and_metadata_last_one_invocation_defaults_last_all(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    metrics.set_default_dimensions(environment="prod")

    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> None:
        metrics.add("Calls", 1, "Count")
        if event.get("first"):
            metrics.add_dimension("channel", "web")
            metrics.add_metadata("request", "r-1")

    handler({"first": True}, Context())
    handler({}, Context())

    first, second = emf_documents(out)
    assert first["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["service", "environment", "channel"]
    ]
    assert second["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["service", "environment"]
    ]
    assert "request" not in second and "channel" not in second


def test_each_invocation_s_line_names_its_own_metrics_and_units(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> None:
        for name, unit, resolution in event["metrics"]:
            metrics.add(name, 2, unit, resolution=resolution)

    same = {"metrics": [("Calls", "Count", 60), ("Latency", "Milliseconds", 1)]}
    other = {"metrics": [("Calls", "Count", 1), ("Size", "Bytes", 60)]}
    for event in (same, other, same):
        handler(event, Context())

    definitions = [
        d["_aws"]["CloudWatchMetrics"][0]["Metrics"] for d in emf_documents(out)
    ]
    assert definitions == [
        [
            {"Name": "Calls", "Unit": "Count"},
            {"Name": "Latency", "Unit": "Milliseconds", "StorageResolution": 1},
        ],
        [
            {"Name": "Calls", "Unit": "Count", "StorageResolution": 1},
            {"Name": "Size", "Unit": "Bytes"},
        ],
        [
            {"Name": "Calls", "Unit": "Count"},
            {"Name": "Latency", "Unit": "Milliseconds", "StorageResolution": 1},
        ],
    ]


def test_the_first_invocation_adds_a_cold_start_line(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    @metrics.log_metrics(capture_cold_start=True)
    def handler(event: dict[str, Any], context: Any) -> None:
        metrics.add("Calls", 1, "Count")

    handler({}, Context())
    handler({}, Context())

    cold, first, second = emf_documents(out)
    assert cold["ColdStart"] == 1
    assert cold["_aws"]["CloudWatchMetrics"][0] == {
        "Namespace": "Orders",
        "Dimensions": [["service", "function_name"]],
        "Metrics": [{"Name": "ColdStart", "Unit": "Count"}],
    }
    assert cold["function_name"] == "orders-prod-api"
    assert "ColdStart" not in first and "ColdStart" not in second


def test_the_cold_start_reads_the_current_invocation_s_context(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    @metrics.log_metrics(capture_cold_start=True)
    def process(record: dict[str, Any]) -> None:
        metrics.add("Records", 1, "Count")

    with runtime.lambda_invocation(Context()):
        process({})

    cold, _ = emf_documents(out)
    assert cold["function_name"] == "orders-prod-api"


def test_an_invocation_without_metrics_logs_a_warning(
    metrics: runtime.Metrics, out: io.StringIO, stream: io.StringIO
) -> None:
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> None:
        pass

    handler({}, Context())

    assert out.getvalue() == ""
    (warning,) = events(stream, "No metric added in this invocation")
    assert warning["level"] == "WARNING"
    assert warning["namespace"] == "Orders"


def test_raise_on_empty_raises_for_an_invocation_without_metrics(
    metrics: runtime.Metrics,
) -> None:
    @metrics.log_metrics(raise_on_empty=True)
    def handler(event: dict[str, Any], context: Any) -> None:
        pass

    with pytest.raises(ValueError, match="no metric was added to Orders"):
        handler({}, Context())


def run_in_threads(work: Callable[[int], None], count: int) -> None:
    """``work(0)`` to ``work(count - 1)``, each in a thread of its own, all at once."""
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_metrics_from_threads_are_all_written(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    def work(number: int) -> None:
        for _ in range(30):
            metrics.add(f"Worker{number}", 1, "Count")

    run_in_threads(work, 8)
    metrics.flush()

    (document,) = emf_documents(out)
    assert all(document[f"Worker{n}"] == [1] * 30 for n in range(8))


class PiecewiseStream(io.StringIO):
    """A stream writing a text in two pieces (a file object need not write at once)."""

    def write(self, text: str) -> int:
        middle = len(text) // 2
        super().write(text[:middle])
        time.sleep(0.001)
        return middle + super().write(text[middle:])


def test_lines_written_from_threads_do_not_interleave() -> None:
    out = PiecewiseStream()
    metrics = runtime.Metrics("Orders", stream=out, clock=lambda: NOW)

    def work(number: int) -> None:
        for _ in range(5 * 100):  # a line each 100 values
            metrics.add(f"Worker{number}", 1, "Count")

    run_in_threads(work, 4)
    metrics.flush()

    documents = emf_documents(out)  # every line whole
    for number in range(4):
        values = [document.get(f"Worker{number}", []) for document in documents]
        assert sum(len(v) if isinstance(v, list) else 1 for v in values) == 500


def test_thirty_dimensions_are_allowed_and_a_thirty_first_refused(
    metrics: runtime.Metrics, out: io.StringIO
) -> None:
    for number in range(29):  # and service
        metrics.add_dimension(f"d{number}", "x")

    with pytest.raises(ValueError, match="30 dimensions at most"):
        metrics.add_dimension("one_more", "x")
    metrics.add_dimension("d0", "replaced")
    metrics.add("Calls", 1, "Count")
    metrics.flush()
    (document,) = emf_documents(out)
    assert len(document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == 30


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (("Calls", 1, "count"), ValueError, "not a CloudWatch unit"),
        (("Calls", 1, "Seconds/Second"), ValueError, "not a CloudWatch unit"),
        (("Calls", math.nan, "Count"), ValueError, "CloudWatch cannot store"),
        (("Calls", math.inf, "Count"), ValueError, "CloudWatch cannot store"),
        (("Calls", 1e-200, "Count"), ValueError, "CloudWatch cannot store"),
        (("Calls", True, "Count"), TypeError, "must be a number"),
        (("Calls", "1", "Count"), TypeError, "must be a number"),
        (("", 1, "Count"), ValueError, "1 to 255 characters"),
        (("   ", 1, "Count"), ValueError, "1 to 255 characters"),
        (("x" * 256, 1, "Count"), ValueError, "1 to 255 characters"),
        (("service", 1, "Count"), ValueError, "already a dimension"),
    ],
)
def test_a_metric_that_emf_cannot_hold_is_refused_when_added(
    metrics: runtime.Metrics,
    arguments: tuple[Any, ...],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        metrics.add(*arguments)


def test_a_resolution_other_than_1_or_60_is_refused(metrics: runtime.Metrics) -> None:
    with pytest.raises(ValueError, match="resolution must be 60 or 1"):
        metrics.add("Calls", 1, "Count", resolution=5)


def test_a_metric_keeps_one_unit_and_one_resolution(metrics: runtime.Metrics) -> None:
    metrics.add("Latency", 1, "Milliseconds")

    with pytest.raises(ValueError, match="keeps one unit and one resolution"):
        metrics.add("Latency", 1, "Seconds")
    with pytest.raises(ValueError, match="keeps one unit and one resolution"):
        metrics.add("Latency", 1, "Milliseconds", resolution=1)


def test_one_name_is_one_thing(metrics: runtime.Metrics) -> None:
    metrics.add("Calls", 1, "Count")
    metrics.add_dimension("channel", "web")
    metrics.add_metadata("order_id", "o-1")

    with pytest.raises(ValueError, match="already a metric"):
        metrics.add_dimension("Calls", "x")
    with pytest.raises(ValueError, match="already a metric"):
        metrics.add_metadata("channel", "x")
    with pytest.raises(ValueError, match="already a dimension or metadata"):
        metrics.add("order_id", 1)


@pytest.mark.parametrize("kind", ["metric", "dimension", "metadata"])
def test_emf_s_own_key_is_no_name(
    metrics: runtime.Metrics, out: io.StringIO, kind: str
) -> None:
    adds: dict[str, Callable[[], None]] = {
        "metric": lambda: metrics.add("_aws", 1, "Count"),
        "dimension": lambda: metrics.add_dimension("_aws", "x"),
        "metadata": lambda: metrics.add_metadata("_aws", {}),
    }

    with pytest.raises(ValueError, match="EMF's own"):
        adds[kind]()
    metrics.add("Calls", 1, "Count")
    metrics.flush()
    emf_documents(out)


@pytest.mark.parametrize("value", ["", " ", "x" * 1025, 7, "café", "a\nb", "a\x7f"])
def test_a_dimension_value_emf_cannot_hold_is_refused(
    metrics: runtime.Metrics, value: Any
) -> None:
    with pytest.raises(ValueError, match="dimension channel"):
        metrics.add_dimension("channel", value)


@pytest.mark.parametrize("name", ["région", "a\tb", ":channel"])
def test_a_dimension_name_cloudwatch_refuses_is_refused(
    metrics: runtime.Metrics, name: str
) -> None:
    with pytest.raises(ValueError, match="dimension name"):
        metrics.add_dimension(name, "web")


def test_metadata_that_json_cannot_hold_is_refused(metrics: runtime.Metrics) -> None:
    with pytest.raises(TypeError, match="cannot be written as JSON"):
        metrics.add_metadata("handler", object())


@pytest.mark.parametrize("namespace", ["", "AWS/Lambda", "a:b", "é", "x" * 256, " "])
def test_a_namespace_cloudwatch_refuses_is_refused(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        runtime.Metrics(namespace)


def test_lines_go_to_standard_output_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = runtime.Metrics("Orders")
    metrics.add("Calls", 2, "Count")

    metrics.flush()

    document = json.loads(capsys.readouterr().out)
    jsonschema.validate(document, SCHEMA)
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]
    assert document["Calls"] == 2
