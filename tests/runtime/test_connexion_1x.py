"""fleece 1.x's tests/test_connexion.py, ported: the import line names fleece_runtime.

The same spec, events and assertions as 1.x's: events of yoke's request
template (API Gateway's non-proxy integration) served by the app of
`connexion.get_connexion_app`, answered with the JSON body or an
`HTTPError`. What changed for the port: the import line, the operations'
module path in the spec, type annotations, and Python 3 only (no ``six``).
The app is connexion 3's ``FlaskApp`` (Flask is installed), so
``flask.request`` works in the operations as it did under connexion 1.
"""

import os
import tempfile
import unittest
from typing import Any
from unittest import mock

import flask

from runtime_stub import fleece_runtime as fleece

# As in 1.x: the spec's return codes reach API Gateway through its
# integration response templates, which map the raised error's text
# (`404: Not Found - ...`) to a status; `call_api` itself returns the body.
TEST_SWAGGER = """
swagger: '2.0'
info:
  version: 'v1'
  title: 'myapp'
  description: 'myapp: for testing connexion/fleece integration'
basePath: '/v1'
paths:
  /users/{user_id}:
    get:
      summary: Get a specific user profile
      operationId: 'tests.runtime.test_connexion_1x.myapp_get_user'
      parameters:
        - name: user_id
          type: integer
          in: path
          required: true
          description: ID of the user to fetch
      responses:
        200:
          description: 'A single user'
          schema:
            $ref: '#/definitions/User'
        404:
          description: 'Not Found'
          schema:
            $ref: '#/definitions/ErrorResponse'
        400:
          description: 'Bad Request'
          schema:
            $ref: '#/definitions/ErrorResponse'
        500:
          description: 'Internal Server Error'
          schema:
            $ref: '#/definitions/ErrorResponse'
  /users:
    post:
      summary: Create a new user
      operationId: 'tests.runtime.test_connexion_1x.myapp_create_user'
      parameters:
        - name: user
          in: body
          schema:
            $ref: '#/definitions/CreateUserPayload'
      responses:
        201:
          description: 'The newly-created user'
          schema:
            $ref: '#/definitions/User'
        400:
          description: 'Bad Request'
          schema:
            $ref: '#/definitions/ErrorResponse'
        500:
          description: 'Internal Server Error'
          schema:
            $ref: '#/definitions/ErrorResponse'

definitions:
  ErrorResponse:
    description: Error response
    type: object
    required: [error]
    properties:
      error:
        type: object
        required: [code, message]
        properties:
          code:
            type: integer
          message:
            type: string

  User:
    description: A single user
    type: object
    required: [full_name, email, active]
    properties:
      user_id:
        type: integer
        description: ID of the user's account
      full_name:
        type: string
        description: User's full name
      email:
        type: string
        description: User's email address
      active:
        type: boolean
        description: True if the user account is active

  CreateUserPayload:
    description: A single user to be created
    type: object
    required: [full_name, email]
    properties:
      full_name:
        type: string
        description: User's full name
      email:
        type: string
        description: User's email address
"""

HEADERS = {"X-Forwarded-Port": "443", "X-Forwarded-Proto": "https", "Host": "myapp.com"}
RAW_GET = {"identity": {"sourceIp": "1.2.3.4"}, "httpMethod": "GET"}


def myapp_get_user(user_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    users: dict[int, dict[str, Any]] = {
        123: {
            "full_name": "Bob User",
            "email": "bob@example.com",
            "active": False,
            "user_id": 123,
        },
        456: {
            "full_name": "Alice User",
            "email": "alice@example.com",
            "active": True,
            "user_id": 456,
        },
        # The spec wants an integer user_id: answering this breaks the contract (500).
        789: {
            "full_name": "Carol User",
            "email": "carol@example.com",
            "active": False,
            "user_id": "789",
        },
    }
    if user_id == 404:
        return {"error": {"message": "user not found", "code": 404}}, 404, {}
    if user_id == 500:
        raise TypeError("something unexpected happened")
    return users.get(user_id, {}), 200, {}


def myapp_create_user(**kwargs: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
    body = flask.request.get_json()
    body["user_id"] = 777
    body["active"] = True
    return body, 201, {}


def get_user_event(user_id: str, querystring: Any) -> dict[str, Any]:
    return {
        "parameters": {
            "gateway": {"resource-path": "/v1/users/{user_id}"},
            "request": {
                "header": dict(HEADERS),
                "body": {},
                "path": {"user_id": user_id},
                "querystring": querystring,
            },
        },
        "rawContext": dict(RAW_GET),
    }


class TestFleeceApp(unittest.TestCase):
    """Full execution paths of the app of `get_connexion_app` (1.x's FleeceApp)."""

    def setUp(self) -> None:
        directory = tempfile.mkdtemp()
        self.swagger_path = os.path.join(directory, "swagger.yaml")
        with open(self.swagger_path, "w") as fp:
            fp.write(TEST_SWAGGER)

        self.logger = mock.Mock()

        self.app = fleece.connexion.get_connexion_app(
            "myapp", self.swagger_path, cache_app=False, logger=self.logger
        )

    def tearDown(self) -> None:
        os.unlink(self.swagger_path)
        os.rmdir(os.path.dirname(self.swagger_path))

    def test_get_user_200_response(self) -> None:
        expected_response = {
            "active": False,
            "email": "bob@example.com",
            "full_name": "Bob User",
            "user_id": 123,
        }
        response = self.app.call_api(get_user_event("123", ""))
        self.assertEqual(expected_response, response)

    def test_get_user_400_response(self) -> None:
        # A query parameter the spec does not name: 400 Bad Request.
        event = get_user_event("123", [("invalid", "value")])
        with self.assertRaises(fleece.httperror.HTTPError) as ar:
            self.app.call_api(event)
        self.assertEqual(400, ar.exception.status_code)
        self.assertEqual(
            "400: Bad Request - Extra query parameter(s) invalid not in spec",
            str(ar.exception),
        )

    def test_get_user_404_response(self) -> None:
        with self.assertRaises(fleece.httperror.HTTPError) as ar:
            self.app.call_api(get_user_event("404", []))
        self.assertEqual(404, ar.exception.status_code)
        self.assertEqual("404: Not Found - user not found", str(ar.exception))

    def test_get_user_500_response(self) -> None:
        with self.assertRaises(fleece.httperror.HTTPError) as ar:
            self.app.call_api(get_user_event("500", []))
        self.assertEqual(500, ar.exception.status_code)
        self.assertEqual("500: Internal Server Error", str(ar.exception))

    def test_get_user_500_response_contract_violation(self) -> None:
        with self.assertRaises(fleece.httperror.HTTPError) as ar:
            self.app.call_api(get_user_event("789", []))
        self.assertEqual(500, ar.exception.status_code)
        self.assertEqual("500: Internal Server Error", str(ar.exception))

        # The broken contract is logged, with jsonschema's account of it.
        expected_log_error_detail = """\
'789' is not of type 'integer'

Failed validating 'type' in schema['properties']['user_id']:
    {'description': "ID of the user's account", 'type': 'integer'}

On instance['user_id']:
    '789'"""
        self.assertEqual(1, self.logger.error.call_count)
        self.logger.error.assert_called_with(
            fleece.connexion.RESPONSE_CONTRACT_VIOLATION,
            detail=expected_log_error_detail,
        )

    def test_create_user_201_response(self) -> None:
        event = {
            "parameters": {
                "gateway": {"resource-path": "/v1/users"},
                "request": {
                    "header": dict(HEADERS),
                    "body": {"full_name": "Erin User", "email": "erin@example.com"},
                    "path": {},
                    "querystring": [],
                },
            },
            "rawContext": {"identity": {"sourceIp": "1.2.3.4"}, "httpMethod": "POST"},
        }
        response = self.app.call_api(event)
        expected_response = {
            "active": True,
            "user_id": 777,
            "email": "erin@example.com",
            "full_name": "Erin User",
        }
        self.assertEqual(expected_response, response)
