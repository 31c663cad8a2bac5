"""Our responses checked against the OBIE v4.0 specification (the shared collection's copy).

:func:`check_response` finds the operation of a response's request in the OpenAPI document
(path template and method), the response declared for its status code, and validates the
body against that response's schema; every response must carry ``x-fapi-interaction-id``.
A status the operation does not declare fails the check. Where the specification declares
an error status without a body (401, 404, 405, 406, 415, 429), our body must be an
``OBErrorResponse1``.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import httpx
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from gateway.spec import SPEC_FILES, Spec, SpecName, load_spec
from tests.gateway.conftest import SHARED_SPECS

_PREFIX: dict[str, SpecName] = {
    "/open-banking/v4.0/aisp": "account-info",
    "/open-banking/v4.0/pisp": "payment-initiation",
}


@cache
def shared_spec(name: SpecName) -> Spec:
    """The shared collection's document ``name``, loaded leniently."""
    return load_spec(name, (SHARED_SPECS / SPEC_FILES[name]).read_bytes())


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        parts = node["$ref"].removeprefix("#/").split("/")
        target: Any = document
        for part in parts:
            target = target[part]
        node = target
    return node


def operation_for(method: str, path: str) -> tuple[Spec, dict[str, Any]]:
    """The spec and the operation object of ``method path``."""
    for prefix, name in _PREFIX.items():
        if path.startswith(prefix):
            spec = shared_spec(name)
            rest = path[len(prefix) :]
            for template, item in spec.document["paths"].items():
                pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
                if re.match(pattern, rest) and method.lower() in item:
                    return spec, item[method.lower()]
            raise AssertionError(f"{method} {rest} is not an operation of {name}")
    raise AssertionError(f"{path} is not an OBIE path")


def check_response(response: httpx.Response) -> Any:
    """Validate ``response`` (module docstring); its JSON body (None when empty)."""
    assert "x-fapi-interaction-id" in response.headers
    spec, operation = operation_for(response.request.method, response.request.url.path)
    declared = operation["responses"].get(str(response.status_code))
    assert declared is not None, f"status {response.status_code} is not declared"
    declared = _resolve(spec.document, declared)
    content = declared.get("content")
    if not content:
        if response.status_code == 204:
            assert response.content == b""
            return None
        # The specification declares no body for 401, 404, 405, 406, 415 and 429; ours is an
        # OBErrorResponse1 all the same (gateway.http), so it is checked as one.
        content = {
            "application/json": {"schema": {"$ref": "#/components/schemas/OBErrorResponse1"}}
        }
    media = content.get("application/json; charset=utf-8") or content["application/json"]
    body = response.json()
    uri = f"urn:test:{spec.name}"
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(spec.document, default_specification=DRAFT4)
    )
    schema = media["schema"]
    reference = schema.get("$ref", None)
    validator = Draft4Validator(
        {"$ref": f"{uri}{reference}"} if reference else schema, registry=registry
    )
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not problems, problems
    return body


def check_error(response: httpx.Response, status: int, *codes: str) -> dict[str, Any]:
    """``response`` is an ``OBErrorResponse1`` with ``status`` (and these v3.1 error names
    in its messages); its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "x-fapi-interaction-id" in response.headers
    body = response.json()
    problems = shared_spec("payment-initiation").problems("OBErrorResponse1", body)
    assert not problems, problems
    assert body["Id"] == response.headers["x-fapi-interaction-id"]
    messages = " ".join(error["Message"] for error in body["Errors"])
    for code in codes:
        assert f"({code})" in messages, messages
    return dict(body)
