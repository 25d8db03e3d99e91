"""Sending a signed consult report to the hospital's FHIR server: a conditional create
(``If-None-Exist`` on the report's identifier), so that a retry never files it twice. The
outcome is returned, never raised: the report is already on record whatever the server
says, and the author is told."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp

from clinical.report_fhir import IDENTIFIER_SYSTEM, diagnostic_report
from clinical.report_pdf import render_pdf


class ReportPush:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + "/DiagnosticReport"
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:  # the token stays out of logs
        return f"ReportPush({self.url!r})"

    async def send(self, room: str, entry: Mapping[str, Any], entries: Mapping[int, Mapping[str, Any]]) -> dict:
        """``{"ok", "status", "location"}`` or ``{"ok": False, "status", "error"}``."""
        report, seq = entry["body"], entry["seq"]
        resource = await asyncio.to_thread(
            lambda: diagnostic_report(report, room, seq, entries, render_pdf(report, room, seq)))
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
                   "If-None-Exist": f"identifier={IDENTIFIER_SYSTEM}|{room}/{seq}"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as http, \
                    http.post(self.url, json=resource, headers=headers) as response:
                if response.status in (200, 201):
                    return {"ok": True, "status": response.status,
                            "location": response.headers.get("Location", "")}
                return {"ok": False, "status": response.status,
                        "error": (await response.text())[:300] or response.reason or ""}
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return {"ok": False, "status": 0, "error": f"{type(exc).__name__}: {exc}"[:300]}
