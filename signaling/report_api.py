"""Exports of a signed consult report, for the room's members (room token):

    GET /api/rooms/{room}/reports/{id}.pdf     for print
    GET /api/rooms/{room}/reports/{id}.json    the FHIR R4 DiagnosticReport

Each export is audited under the token's identity.
"""

from __future__ import annotations

import asyncio
import json
import re

from aiohttp import web

from clinical.errors import ClinicalError
from clinical.report_pdf import render_pdf
from conference.actors import actor_for

from .auth import bearer, claims_for
from .http_errors import HttpError
from .server import Server

_ID = re.compile(r"[0-9a-f-]{36}")


def routes(server: Server) -> list[web.RouteDef]:
    hub = server.clinical

    async def export(request: web.Request) -> web.Response:
        room, report_id, kind = (request.match_info[k] for k in ("room", "id", "kind"))
        claims = await claims_for(server, bearer(request), room)
        if not _ID.fullmatch(report_id):
            raise HttpError(404, "not-found", "no such report in this room")
        try:
            report = await hub.shared_report(room, report_id)
        except ClinicalError as exc:  # a damaged session log: the server's fault, said plainly
            raise HttpError(503, exc.code, exc.message) from None
        if report is None:
            raise HttpError(404, "not-found", "no such report in this room")
        await hub.audit.record("report-export", actor_for(claims, request.remote or ""), room,
                               f"report/{report_id}", format=kind)
        headers = {"Cache-Control": "private, no-store"}
        if kind == "pdf":
            pdf = await asyncio.to_thread(render_pdf, report)
            return web.Response(body=pdf, content_type="application/pdf", headers={
                **headers, "Content-Disposition": f'attachment; filename="consult-report-{report_id}.pdf"'})
        return web.Response(text=json.dumps(report["fhir"]), content_type="application/fhir+json", headers=headers)

    return [web.get(r"/api/rooms/{room}/reports/{id}.{kind:pdf|json}", export)]
