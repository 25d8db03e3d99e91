"""/api/openapi.json: an OpenAPI 3.1 document that names every route the running server
has and nothing else, and whose schemas the real answers fit."""

from __future__ import annotations

import re

import aiohttp
from aiohttp import web
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.server import start_server

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def document(server) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/openapi.json") as r:
            assert r.status == 200 and r.content_type == "application/json"
            return await r.json()


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route; aiohttp adds HEAD to each GET, and the
    static file tree of the web client is files, not an API."""
    return {(route.method, route.resource.canonical) for route in app.router.routes()
            if route.method != "HEAD" and not isinstance(route.resource, web.StaticResource)}


async def test_the_document_names_exactly_the_served_routes(server):
    spec = await document(server)
    assert spec["openapi"].startswith("3.1.")
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item
                  if method in METHODS}
    served = served_routes(server.app)
    assert not served - documented, f"routes missing from signaling/openapi.json: {sorted(served - documented)}"
    assert not documented - served, f"documented but not served: {sorted(documented - served)}"


async def test_metrics_keyed_server_has_the_same_routes(tmp_path, server):
    """Settings change who may call a route, never which routes exist."""
    keyed, runner = await start_server(str(tmp_path / "keyed"), metrics_key="m" * 32)
    try:
        assert served_routes(keyed.app) == served_routes(server.app)
    finally:
        await runner.cleanup()


async def test_the_document_is_consistent(server):
    spec = await document(server)
    schemes = set(spec["components"]["securitySchemes"])
    ids = []
    for path, item in spec["paths"].items():
        templated = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            ids.append(operation["operationId"])
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == templated, (method, path)
            assert operation["responses"], (method, path)
            for requirement in operation.get("security", spec["security"]):
                assert set(requirement) <= schemes, (method, path)
    assert len(ids) == len(set(ids))
    refs = set(re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', str(spec).replace("'", '"')))
    assert refs and all(name in spec["components"][kind] for kind, name in refs)
    for schema in spec["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


class Answers:
    """Checks a real answer against the schema the document gives for it ($refs and all)."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.registry = Registry().with_resource("urn:openapi", Resource(contents=spec, specification=DRAFT202012))

    def check(self, method: str, path: str, status: int, body: object) -> None:
        responses = self.spec["paths"][path][method]["responses"]
        assert str(status) in responses, (method, path, status)
        pointer = f"/paths/{_escape(path)}/{method}/responses/{status}"
        if "$ref" in responses[str(status)]:
            pointer = responses[str(status)]["$ref"].removeprefix("#")
        validator = Draft202012Validator({"$ref": f"urn:openapi#{pointer}/content/application~1json/schema"},
                                         registry=self.registry)
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, (method, path, status, errors)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


async def test_real_answers_fit_the_documented_schemas(server):
    spec = await document(server)
    answers = Answers(spec)
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    async with aiohttp.ClientSession() as http:
        async def call(method: str, template: str, path: str, status: int, **kwargs) -> dict:
            async with http.request(method, server.url + path, **kwargs) as r:
                assert r.status == status, await r.text()
                body = await r.json()
            answers.check(method.lower(), template, status, body)
            return body

        await call("GET", "/healthz", "/healthz", 200)
        await call("GET", "/api/config", "/api/config", 200)
        await call("POST", "/api/rooms", "/api/rooms", 201, headers=admin,
                   json={"name": "ward", "password": "pw-123456"})
        await call("POST", "/api/rooms", "/api/rooms", 409, headers=admin,
                   json={"name": "ward", "password": "pw-123456"})
        grant = await call("POST", "/api/rooms/{room}/token", "/api/rooms/ward/token", 200,
                           json={"password": "pw-123456", "name": "Dr A"})
        bearer = {"Authorization": f"Bearer {grant['token']}"}
        await call("GET", "/api/rooms/{room}", "/api/rooms/ward", 200, headers=bearer)
        await call("GET", "/api/rooms/{room}", "/api/rooms/nowhere", 404, headers=admin)
        await call("POST", "/api/rooms/{room}/invites", "/api/rooms/ward/invites", 201, headers=bearer,
                   json={"role": "viewer"})
        await call("GET", "/api/rooms/{room}/invites", "/api/rooms/ward/invites", 200, headers=bearer)
        await call("POST", "/api/keys", "/api/keys", 201, headers=admin, json={"name": "portal"})
        await call("GET", "/api/keys", "/api/keys", 200, headers=admin)
        await call("GET", "/api/rooms/{room}/live", "/api/rooms/ward/live", 200, headers=bearer)
        await call("GET", "/api/rooms/{room}/recordings", "/api/rooms/ward/recordings", 200, headers=bearer)
        await call("GET", "/whip/{room}", "/whip/ward", 405)
