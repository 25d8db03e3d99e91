"""REST for signed consult reports: list, read (with the signature checked), and export as
a FHIR R4 DiagnosticReport or a PDF. Anyone in the room may read them (a room token), as
may an operator; every open is audited. Writing a report is a data-channel message
(``report``, docs/signaling.md), so it is answered like every other clinical share."""

from __future__ import annotations

import asyncio

from aiohttp import web

from clinical.actor import Actor
from clinical.errors import ClinicalError
from clinical.report_fhir import diagnostic_report
from clinical.report_pdf import render_pdf
from conference.actors import actor_for

from .auth import bearer, claims_for, operator, operator_actor
from .http_errors import HttpError
from .server import Server


def routes(server: Server) -> list[web.RouteDef]:
    hub = server.clinical

    async def reader(request: web.Request, room: str) -> Actor:
        who = await operator(server, request)
        if who is not None:
            return operator_actor(request, who)
        return actor_for(await claims_for(server, bearer(request), room), request.remote or "")

    async def entries(room: str) -> dict[int, dict]:
        try:
            return {e["seq"]: e for e in await hub.log_entries(room)}
        except ClinicalError as exc:  # a damaged session log: the server's fault, said plainly
            raise HttpError(503, exc.code, exc.message) from None

    async def report(request: web.Request, what: str) -> tuple[str, int, dict, dict[int, dict]]:
        room = request.match_info["room"]
        actor = await reader(request, room)
        seq = request.match_info["seq"]
        logged = await entries(room)
        entry = logged.get(int(seq)) if seq.isascii() and seq.isdigit() and len(seq) < 12 else None
        if entry is None or entry["kind"] != "report":
            raise HttpError(404, "not-found", "no such report in this room")
        await server.audit.record("report-open", actor, room, f"report/{room}/{entry['seq']}", what=what)
        return room, entry["seq"], entry["body"], logged

    async def listing(request: web.Request) -> web.Response:
        room = request.match_info["room"]
        await reader(request, room)
        found = [{"seq": e["seq"], "title": e["body"]["title"], "author": e["body"]["author"],
                  "signed_at": e["body"]["signed_at"], "verified": hub.reports.verify(e["body"])}
                 for e in (await entries(room)).values() if e["kind"] == "report"]
        return web.json_response({"reports": found})

    async def one(request: web.Request) -> web.Response:
        room, seq, body, _ = await report(request, "report")
        return web.json_response({"seq": seq, "report": body, "verified": hub.reports.verify(body)})

    async def fhir(request: web.Request) -> web.Response:
        room, seq, body, logged = await report(request, "fhir")
        resource = await asyncio.to_thread(
            lambda: diagnostic_report(body, room, seq, logged, render_pdf(body, room, seq)))
        return web.json_response(resource, content_type="application/fhir+json")

    async def pdf(request: web.Request) -> web.Response:
        room, seq, body, _ = await report(request, "pdf")
        data = await asyncio.to_thread(render_pdf, body, room, seq)
        return web.Response(body=data, content_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="consult-report-{seq}.pdf"',
            "Cache-Control": "private, no-store"})

    base = "/api/rooms/{room}/reports"
    return [
        web.get(base, listing),
        web.get(base + "/{seq}", one),
        web.get(base + "/{seq}/fhir", fhir),
        web.get(base + "/{seq}/pdf", pdf),
    ]
