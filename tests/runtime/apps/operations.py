"""The operations of orders.yaml, as a service writes them."""

from typing import Any

from runtime_stub.fleece_runtime import HTTPError, current_lambda_context, get_logger

logger = get_logger(__name__)


def get_order(order_id: str) -> dict[str, Any]:
    logger.info("loading order", order_id=order_id)
    if order_id == "o-404":
        raise HTTPError(404, f"no order {order_id}")
    context = current_lambda_context()
    return {
        "order_id": order_id,
        "sku": "a-1",
        "quantity": 1,
        "request": getattr(context, "aws_request_id", None),
    }


def create_order(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    return {"order_id": "o-1", **body}, 201


def broken() -> None:
    raise RuntimeError("the database is down")


def break_contract() -> dict[str, Any]:
    return {"order_id": 7}
