"""The operations of catalog.yaml, as a service writes them."""

from typing import Any

import connexion

from runtime_stub.fleece_runtime import HTTPError

ITEMS: list[dict[str, Any]] = [
    {"item_id": 1, "name": "kettle", "price": 20.5, "tags": ["kitchen", "steel"]},
    {"item_id": 2, "name": "pan", "price": 12, "tags": ["kitchen"]},
]


def list_items(tag: list[str] | None = None) -> list[dict[str, Any]]:
    wanted = set(tag or [])
    return [item for item in ITEMS if wanted <= set(item["tags"])]


def create_item(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    return {"item_id": 3, **body}, 201


def get_item(item_id: int, limit: int | None = None) -> dict[str, Any]:
    for item in ITEMS:
        if item["item_id"] == item_id:
            return {**item, "tags": item["tags"][:limit]}
    raise HTTPError(404, f"no item {item_id}")


def delete_item(item_id: int) -> tuple[None, int]:
    return None, 204


def get_file(path: str) -> dict[str, Any]:
    return {"path": path}


def keyed() -> dict[str, Any]:
    return {}


def whoami() -> dict[str, Any]:
    request = connexion.request
    return {
        "tenant": request.headers["x-tenant"],
        "client": request.client.host if request.client else None,
        "scheme": request.url.scheme,
    }


def broken() -> None:
    raise RuntimeError("cannot reach db://admin:hunter2@10.0.0.7")


def break_contract() -> dict[str, Any]:
    return {"item_id": "seven", "name": "kettle", "price": 20.5}
