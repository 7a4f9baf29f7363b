"""fleece 1.x's ``FleeceApp``: connexion 3's app class with 1.x's ``call_api`` and ``run``.

1.x code built the app itself (``FleeceApp(name, specification_dir=...)``,
then ``add_api``) and ran it locally with ``app.run(8080)``, as 1.x's README
shows. Both keep working with only the import line changed.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime
from runtime_stub.fleece_runtime import HTTPError, testing
from tests.runtime.test_request_template import kept_records, template_event

APPS = Path(__file__).resolve().parent / "apps"
REPO = Path(__file__).resolve().parents[2]


def connexion_module() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import connexion
    return connexion


def catalog_app(logger: Any = None) -> Any:
    """A FleeceApp of catalog.yaml, built as fleece 1.x code built it."""
    app = runtime.connexion.FleeceApp(
        "catalog-direct", specification_dir=str(APPS), logger=logger
    )
    app.add_api("catalog.yaml")
    return app


def test_fleece_app_is_connexions_app_class_made_once() -> None:
    app_class = runtime.connexion.FleeceApp

    assert issubclass(app_class, connexion_module().FlaskApp)  # Flask is installed
    assert runtime.connexion.FleeceApp is app_class
    assert runtime.handlers.connexion.FleeceApp is app_class


def test_a_fleece_app_built_as_in_1x_serves_a_template_event() -> None:
    event = template_event(
        "GET", "/v1/items/{item_id}", path={"item_id": "1"}, query={"limit": "1"}
    )

    assert catalog_app().call_api(event) == {
        "item_id": 1,
        "name": "kettle",
        "price": 20.5,
        "tags": ["kitchen"],
    }


def test_a_fleece_app_serves_a_proxy_event_with_either_method() -> None:
    app = catalog_app()
    event = testing.http_api_event("GET", "/v1/items/2")

    for method in (app.call_api, app.call_proxy_api):
        result = method(event)
        assert result["statusCode"] == 200
        assert json.loads(result["body"])["name"] == "pan"


def test_the_logger_given_to_the_app_gets_its_lines() -> None:
    logger = logging.getLogger("tests.fleece_app")
    event = template_event("GET", "/v1/items/{item_id}", path={"item_id": "9"})

    with kept_records(logger) as records, pytest.raises(HTTPError) as error:
        catalog_app(logger).call_api(event)

    assert str(error.value) == "404: Not Found - no item 9"
    first = json.loads(records[0].getMessage())
    assert (first["event"], first["http_status"]) == ("Raising 4xx error", 404)


def swagger_ui(app: Any) -> bool:
    """Whether connexion serves the Swagger UI of the app's (first) API."""
    chosen = app.middleware.apis[0].kwargs["swagger_ui_options"]
    if chosen is None:
        chosen = app.middleware.options.swagger_ui_options
    return chosen is not None and bool(chosen.swagger_ui)


def ui_on() -> Any:
    connexion_module()
    from connexion.options import SwaggerUIOptions

    return SwaggerUIOptions(swagger_ui=True)


def test_the_swagger_ui_is_off_by_default() -> None:
    assert not swagger_ui(catalog_app())


@pytest.mark.parametrize("where", ["app", "add_api", "connexion 1 options"])
def test_the_swagger_ui_is_on_when_asked_for(where: str) -> None:
    app_options: dict[str, Any] = {
        "app": {"swagger_ui_options": ui_on()},
        "add_api": {},
        "connexion 1 options": {"options": {"swagger_ui": True}},
    }[where]
    api_options = {"swagger_ui_options": ui_on()} if where == "add_api" else {}
    app = runtime.connexion.FleeceApp("ui", specification_dir=str(APPS), **app_options)
    app.add_api("catalog.yaml", **api_options)

    assert swagger_ui(app)


def test_connexion_1_options_other_than_swagger_ui_are_refused() -> None:
    with pytest.raises(TypeError, match=r"not \['swagger_path'\]"):
        runtime.connexion.FleeceApp("x", options={"swagger_path": "/opt/ui"})


def test_a_lifespan_is_refused() -> None:
    with pytest.raises(TypeError, match="takes no lifespan"):
        runtime.connexion.FleeceApp("x", lifespan=lambda app: None)


def test_a_subclass_of_fleece_app_is_prepared_once() -> None:
    class Mine(runtime.connexion.FleeceApp):  # type: ignore[misc,name-defined]
        pass

    app = runtime.get_connexion_app(
        "catalog-mine", APPS / "catalog.yaml", app_class=Mine, cache_app=False
    )

    assert type(app) is Mine
    assert app.started
    assert len(app.middleware.error_handlers) == 4
    event = template_event(
        "GET", "/v1/items/{item_id}", path={"item_id": "2"}, query={"limit": "1"}
    )
    assert app.call_api(event)["name"] == "pan"


def test_get_connexion_app_gives_a_started_fleece_app() -> None:
    app = runtime.get_connexion_app("catalog-class", APPS / "catalog.yaml")
    try:
        assert isinstance(app, runtime.connexion.FleeceApp)
        assert app.started
    finally:
        runtime._connexion_apps.pop("catalog-class", None)


@pytest.mark.parametrize(("where"), ["run", "app"])
def test_run_refuses_connexion_1_s_tornado_and_gevent(where: str) -> None:
    app = (
        catalog_app()
        if where == "run"
        else runtime.connexion.FleeceApp(
            "x", specification_dir=str(APPS), server="gevent"
        )
    )

    with pytest.raises(ValueError, match="serves with uvicorn"):
        app.run(8080, server="tornado") if where == "run" else app.run(8080)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "runtime_stub"), str(REPO)])
    return env


RUN_SCRIPTS = {
    # fleece 1.x's README: the app of get_connexion_app, run on a port.
    "readme": (
        "app = r.connexion.get_connexion_app('catalog', SPEC)\n"
        "app.run(PORT, host='127.0.0.1')\n"
    ),
    # connexion 1's constructor arguments, the port as a string (from a variable).
    "constructor": (
        "app = r.connexion.FleeceApp('catalog', specification_dir=APPS,"
        " port='PORT', host='127.0.0.1', debug=True, server='flask')\n"
        "app.add_api('catalog.yaml')\n"
        "app.run()\n"
    ),
}


@pytest.mark.parametrize("script", RUN_SCRIPTS)
def test_app_run_serves_the_api_as_connexion_1_did(tmp_path: Path, script: str) -> None:
    port = free_port()
    code = "import fleece_runtime as r\n" + RUN_SCRIPTS[script].replace(
        "SPEC", repr(str(APPS / "catalog.yaml"))
    ).replace("APPS", repr(str(APPS))).replace("PORT", str(port))
    server = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        answer = get_when_up(f"http://127.0.0.1:{port}/v1/items/1", server)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()

    assert json.loads(answer)["name"] == "kettle"
    assert server.returncode == 0, output


def get_when_up(url: str, server: subprocess.Popen[str]) -> str:
    """The body of GET ``url``, once the server started listening (60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, "the server process ended"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body: str = response.read().decode()
                return body
        except (ConnectionError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_without_connexion_fleece_app_says_what_to_install(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "sys.modules['connexion'] = None\n"
        "import fleece_runtime as r\n"
        "try:\n"
        "    r.connexion.FleeceApp\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=60,
    )

    assert done.stdout.strip() == (
        "fleece_runtime needs the package 'connexion' for this call: "
        "add it to src/requirements.txt (pip install connexion)"
    ), done.stderr
