"""fleece_runtime X-Ray: subsegment documents as the daemon receives them over UDP."""

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.conftest import RUNTIME_DIR
from tests.runtime.runtime_servers import (
    LAMBDA_SEGMENT_ID,
    TRACE_ID,
    Daemon,
    HttpServer,
)

HEX16 = re.compile(r"[0-9a-f]{16}")


def test_a_subsegment_is_one_datagram_sent_complete_when_the_call_ends(
    daemon: Daemon,
) -> None:
    @runtime.xray.trace_xray_subsegment()
    def load_order() -> int:
        return 7

    assert load_order() == 7

    [datagram] = daemon.datagrams()
    assert datagram.startswith(b'{"format": "json", "version": 1}\n{')
    assert datagram.count(b"\n") == 1
    document = json.loads(datagram.partition(b"\n")[2])
    assert document == {
        "type": "subsegment",
        "id": document["id"],
        "trace_id": TRACE_ID,
        "parent_id": LAMBDA_SEGMENT_ID,
        "name": "test_a_subsegment_is_one_datagram_sent_complete_when_the_call_ends.load_order",
        "start_time": document["start_time"],
        "end_time": document["end_time"],
    }
    assert HEX16.fullmatch(document["id"])
    assert document["start_time"] <= document["end_time"] <= time.time()


def test_nested_calls_nest_their_subsegments(daemon: Daemon) -> None:
    @runtime.trace_xray_subsegment()
    def inner() -> None:
        pass

    @runtime.trace_xray_subsegment()
    def outer() -> None:
        inner()
        inner()

    outer()

    first, second, parent = daemon.completed()
    assert parent["name"].endswith("outer") and parent["parent_id"] == LAMBDA_SEGMENT_ID
    assert first["parent_id"] == second["parent_id"] == parent["id"]
    assert first["id"] != second["id"]


def test_threads_nest_their_own_calls(daemon: Daemon) -> None:
    barrier = threading.Barrier(4)

    @runtime.trace_xray_subsegment()
    def step() -> None:
        time.sleep(0.01)

    @runtime.trace_xray_subsegment()
    def job() -> None:
        barrier.wait()
        step()

    threads = [threading.Thread(target=job) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    documents = daemon.completed()
    jobs = {d["id"] for d in documents if d["name"].endswith("job")}
    steps = [d for d in documents if d["name"].endswith("step")]
    assert len(jobs) == 4 and len(steps) == 4
    assert sorted(d["parent_id"] for d in steps) == sorted(jobs)


def test_pool_threads_in_current_context_nest_under_the_traced_caller(
    daemon: Daemon,
) -> None:
    @runtime.trace_xray_subsegment()
    def resize(size: int) -> int:
        return size // 2

    @runtime.trace_xray_subsegment()
    def handler() -> list[int]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(runtime.in_current_context(resize), size)
                for size in (10, 20, 30)
            ]
            return [future.result() for future in futures]

    assert handler() == [5, 10, 15]

    *resized, parent = daemon.completed()
    assert parent["name"].endswith("handler")
    assert len(resized) == 3
    assert {document["parent_id"] for document in resized} == {parent["id"]}


def test_without_in_current_context_pool_threads_hang_from_the_lambda_segment(
    daemon: Daemon,
) -> None:
    @runtime.trace_xray_subsegment()
    def resize() -> None:
        pass

    @runtime.trace_xray_subsegment()
    def handler() -> None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(resize).result()

    handler()

    resized, _ = daemon.completed()
    assert resized["parent_id"] == LAMBDA_SEGMENT_ID


def test_a_thread_in_current_context_keeps_its_own_nesting(daemon: Daemon) -> None:
    started, finish = threading.Event(), threading.Event()

    @runtime.trace_xray_subsegment()
    def step() -> None:
        pass

    @runtime.trace_xray_subsegment()
    def poll() -> None:
        started.set()
        finish.wait(5)
        step()

    @runtime.trace_xray_subsegment()
    def handler() -> None:
        thread = threading.Thread(target=runtime.in_current_context(poll))
        thread.start()
        started.wait(5)
        step()  # while poll is open in the other thread
        finish.set()
        thread.join()
        step()

    handler()

    documents = daemon.completed()
    [handler_doc] = [d for d in documents if d["name"].endswith("handler")]
    [poll_doc] = [d for d in documents if d["name"].endswith("poll")]
    steps = [d for d in documents if d["name"].endswith("step")]
    assert poll_doc["parent_id"] == handler_doc["id"]
    assert sorted(d["parent_id"] for d in steps) == sorted(
        [handler_doc["id"], handler_doc["id"], poll_doc["id"]]
    )


def test_async_functions_are_traced_until_their_coroutine_ends(
    daemon: Daemon,
) -> None:
    @runtime.trace_xray_subsegment()
    async def fetch(delay: float) -> float:
        await asyncio.sleep(delay)
        return delay

    @runtime.trace_xray_subsegment()
    async def handler() -> list[float]:
        return list(await asyncio.gather(fetch(0.05), fetch(0.1)))

    assert asyncio.run(handler()) == [0.05, 0.1]

    first, second, parent = daemon.completed()
    assert (first["parent_id"], second["parent_id"]) == (parent["id"], parent["id"])
    assert first["end_time"] - first["start_time"] >= 0.05
    assert second["end_time"] - second["start_time"] >= 0.1
    assert parent["end_time"] >= second["end_time"]


def test_async_function_errors_are_faults_and_reraised(daemon: Daemon) -> None:
    @runtime.trace_xray_subsegment()
    async def charge() -> None:
        await asyncio.sleep(0)
        raise ValueError("card declined")

    with pytest.raises(ValueError, match="card declined"):
        asyncio.run(charge())

    [call] = daemon.completed()
    assert call["fault"] is True
    assert call["cause"]["exceptions"][0]["message"] == "card declined"


def test_a_subsegment_of_an_earlier_invocation_of_the_trace_is_not_the_parent(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same Root, new Parent: another invocation in the same trace (a retry,
    # a Step Functions state), while a context of the first one is still open.
    next_segment = "8f2a55b1c4d3e6f7"

    @runtime.trace_xray_subsegment()
    def later() -> None:
        pass

    @runtime.trace_xray_subsegment()
    def earlier() -> None:
        monkeypatch.setenv(
            "_X_AMZN_TRACE_ID", f"Root={TRACE_ID};Parent={next_segment};Sampled=1"
        )
        later()

    earlier()

    later_doc, earlier_doc = daemon.completed()
    assert earlier_doc["parent_id"] == LAMBDA_SEGMENT_ID
    assert later_doc["parent_id"] == next_segment


def test_exception_marks_a_fault_with_its_cause_and_is_reraised(daemon: Daemon) -> None:
    @runtime.trace_xray_subsegment()
    def inner() -> None:
        raise ValueError("no such order")

    @runtime.trace_xray_subsegment()
    def outer() -> None:
        inner()

    with pytest.raises(ValueError, match="no such order"):
        outer()

    failed, caller = daemon.completed()
    assert failed["fault"] is True
    [exception] = failed["cause"]["exceptions"]
    assert exception["type"] == "ValueError"
    assert exception["message"] == "no such order"
    assert exception["stack"][0] == {
        "path": "test_xray.py",
        "line": exception["stack"][0]["line"],
        "label": "inner",
    }
    assert failed["cause"]["working_directory"] == os.getcwd()
    assert caller["fault"] is True
    assert caller["cause"] == exception["id"]


def test_arguments_are_not_recorded_unless_asked(daemon: Daemon) -> None:
    @runtime.trace_xray_subsegment()
    def login(password: str) -> None:
        pass

    @runtime.trace_xray_subsegment(skip_args=False)
    def lookup(order_id: int, *, verbose: bool) -> None:
        pass

    login("hunter2")
    lookup(7, verbose=True)

    datagrams = daemon.datagrams()
    assert not any(b"hunter2" in d for d in datagrams)
    recorded = json.loads(datagrams[-1].partition(b"\n")[2])
    assert recorded["metadata"] == {
        "default": {"args": ["7"], "kwargs": ["verbose=True"]}
    }


@pytest.mark.parametrize(
    "trace_header",
    [
        None,
        f"Root={TRACE_ID};Parent={LAMBDA_SEGMENT_ID};Sampled=0",
        f"Root={TRACE_ID};Sampled=1",
        "garbage",
    ],
    ids=["absent", "unsampled", "no-parent", "garbage"],
)
def test_nothing_is_sent_without_a_sampled_trace(
    daemon: Daemon,
    monkeypatch: pytest.MonkeyPatch,
    trace_header: str | None,
) -> None:
    if trace_header is None:
        monkeypatch.delenv("_X_AMZN_TRACE_ID")
    else:
        monkeypatch.setenv("_X_AMZN_TRACE_ID", trace_header)

    @runtime.trace_xray_subsegment(skip_args=False)
    def work() -> str:
        return "done"

    assert work() == "done"
    assert daemon.datagrams(wait=0.2) == []


@pytest.mark.parametrize(
    "address", ["127.0.0.1:9", "not an address", "tcp:127.0.0.1:2000 udp:"]
)
def test_a_missing_daemon_neither_raises_nor_slows_the_call(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", address)

    @runtime.trace_xray_subsegment()
    def work() -> int:
        return 1

    started = time.perf_counter()
    assert sum(work() for _ in range(100)) == 100
    assert time.perf_counter() - started < 0.5


def test_daemon_address_may_name_tcp_and_udp(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AWS_XRAY_DAEMON_ADDRESS", f"tcp:127.0.0.1:1 udp:{daemon.address}"
    )

    runtime.trace_xray_subsegment()(lambda: None)()

    assert len(daemon.completed()) == 1


def test_botocore_calls_become_aws_subsegments_once(daemon: Daemon, aws: str) -> None:
    runtime.xray.monkey_patch_botocore_for_xray()
    runtime.xray.monkey_patch_botocore_for_xray()
    s3 = runtime.boto3.client("s3")
    daemon.datagrams(wait=0.1)

    s3.list_buckets()

    [call] = daemon.completed()
    assert call["name"] == "s3"
    assert call["namespace"] == "aws"
    assert call["parent_id"] == LAMBDA_SEGMENT_ID
    assert call["aws"]["operation"] == "ListBuckets"
    assert call["aws"]["region"] == "us-east-1"
    assert call["aws"]["request_id"]
    assert call["http"] == {"response": {"status": 200}}
    assert not {"error", "fault", "throttle"} & set(call)


def test_aws_client_errors_are_errors_not_faults(daemon: Daemon, aws: str) -> None:
    from botocore.exceptions import ClientError

    runtime.monkey_patch_botocore_for_xray()
    s3 = runtime.boto3.client("s3")

    with pytest.raises(ClientError):
        s3.head_bucket(Bucket="missing")

    [call] = daemon.completed()
    assert call["http"] == {"response": {"status": 404}}
    assert call["error"] is True
    assert "fault" not in call
    assert call["cause"]["exceptions"][0]["type"] == "ClientError"
    assert call["cause"]["exceptions"][0]["remote"] is True


def test_traced_function_is_the_parent_of_its_aws_calls(
    daemon: Daemon, aws: str
) -> None:
    runtime.monkey_patch_botocore_for_xray()
    s3 = runtime.boto3.client("s3")

    @runtime.trace_xray_subsegment()
    def handler() -> None:
        s3.list_buckets()

    handler()

    call, parent = daemon.completed()
    assert call["parent_id"] == parent["id"]


def test_requests_become_remote_subsegments_once(
    daemon: Daemon, http_server: HttpServer
) -> None:
    runtime.xray.monkey_patch_requests_for_xray()
    runtime.xray.monkey_patch_requests_for_xray()

    runtime.requests.get(f"{http_server.url}/orders/7?token=secret")

    [call] = daemon.completed()
    assert call["name"] == "127.0.0.1"
    assert call["namespace"] == "remote"
    assert call["http"] == {
        "request": {"method": "GET", "url": f"{http_server.url}/orders/7"},
        "response": {"status": 200, "content_length": 2},
    }
    sent = http_server.exchange.requests[0]["headers"]["X-Amzn-Trace-Id"]
    assert sent == f"Root={TRACE_ID};Parent={call['id']};Sampled=1"


def test_server_errors_are_faults_and_throttles_are_marked(
    daemon: Daemon, http_server: HttpServer
) -> None:
    import requests

    statuses = iter([500, 429, 404])
    http_server.responder = lambda n, request: (next(statuses), {}, b"")
    runtime.monkey_patch_requests_for_xray()

    for _ in range(3):
        requests.get(http_server.url, timeout=5)

    flags = [
        {k: d[k] for k in ("error", "fault", "throttle") if k in d}
        for d in daemon.completed()
    ]
    assert flags == [
        {"fault": True},
        {"error": True, "throttle": True},
        {"error": True},
    ]


def test_failed_requests_are_faults(daemon: Daemon) -> None:
    import requests

    runtime.monkey_patch_requests_for_xray()

    with pytest.raises(requests.ConnectionError):
        requests.get("http://127.0.0.1:9/", timeout=2)

    [call] = daemon.completed()
    assert call["fault"] is True
    assert call["cause"]["exceptions"][0]["type"] == "ConnectionError"


PATCH_ON_IMPORT_SCRIPT = """
import sys

import fleece_runtime

fleece_runtime.xray.monkey_patch_for_xray_on_import()
fleece_runtime.xray.monkey_patch_for_xray_on_import()
print("botocore.client" in sys.modules, "requests" in sys.modules)

import boto3
import requests

boto3.client("s3").list_buckets()
requests.get(URL, timeout=5)
"""


def test_libraries_imported_later_are_patched_as_their_import_ends(
    daemon: Daemon, aws: str, http_server: HttpServer
) -> None:
    env = {**os.environ, "PYTHONPATH": str(RUNTIME_DIR)}

    ran = subprocess.run(
        [sys.executable, "-c", f"URL = {http_server.url!r}\n{PATCH_ON_IMPORT_SCRIPT}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "False False\n"  # neither imported by the patch itself
    aws_call, http_call = daemon.completed()
    assert (aws_call["namespace"], aws_call["aws"]["operation"]) == (
        "aws",
        "ListBuckets",
    )
    assert (http_call["namespace"], http_call["name"]) == ("remote", "127.0.0.1")


def test_libraries_already_imported_are_patched_at_once(
    daemon: Daemon, http_server: HttpServer
) -> None:
    import requests

    runtime.xray.monkey_patch_for_xray_on_import()
    requests.get(http_server.url, timeout=5)

    [call] = daemon.completed()
    assert call["namespace"] == "remote"


SDK_SCRIPT = """
import requests
from aws_xray_sdk.core import patch, xray_recorder

xray_recorder.configure(sampling=False, context_missing="LOG_ERROR")
patch(["requests"])
requests.get(URL + "/orders?q=1", timeout=5)

@xray_recorder.capture("work")
def work():
    raise ValueError("nope")

try:
    work()
except ValueError:
    pass
"""


def sdk_documents(daemon: Daemon, url: str) -> list[dict[str, Any]]:
    """What aws-xray-sdk sends, on Lambda, for the same calls."""
    env = {**os.environ, "LAMBDA_TASK_ROOT": os.getcwd()}
    subprocess.run(
        [sys.executable, "-c", f"URL = {url!r}\n{SDK_SCRIPT}"],
        env=env,
        check=True,
        timeout=60,
    )
    documents = []
    for datagram in daemon.datagrams():
        header, _, body = datagram.partition(b"\n")
        assert json.loads(header) == {"format": "json", "version": 1}
        documents.append(json.loads(body))
    return documents


def test_documents_have_the_fields_aws_xray_sdk_sends(
    daemon: Daemon, http_server: HttpServer
) -> None:
    sdk_request, sdk_work = sdk_documents(daemon, http_server.url)

    runtime.monkey_patch_requests_for_xray()
    runtime.requests.get(f"{http_server.url}/orders?q=1", timeout=5)

    @runtime.trace_xray_subsegment()
    def work() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError):
        work()
    ours_request, ours_work = daemon.completed()

    assert set(ours_request["http"]["request"]) == set(sdk_request["http"]["request"])
    assert set(ours_request["http"]["response"]) - set(
        sdk_request["http"]["response"]
    ) <= {"content_length"}
    assert (
        ours_request["http"]["request"]["url"] == sdk_request["http"]["request"]["url"]
    )
    # The SDK names the decorator's namespace "local"; the daemon accepts only
    # "aws" and "remote", so fleece leaves it out. The SDK writes
    # "in_progress": false on complete documents; X-Ray reads a document with
    # an end_time as complete, and fleece sends only complete ones.
    assert set(ours_request) == set(sdk_request) - {"in_progress"}
    assert set(ours_work) == set(sdk_work) - {"namespace", "in_progress"}
    assert set(ours_work["cause"]) == set(sdk_work["cause"])
    assert set(ours_work["cause"]["exceptions"][0]) == set(
        sdk_work["cause"]["exceptions"][0]
    )
    for ours, sdk in ((ours_request, sdk_request), (ours_work, sdk_work)):
        assert (ours["trace_id"], ours["parent_id"]) == (
            sdk["trace_id"],
            sdk["parent_id"],
        )
