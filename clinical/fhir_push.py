"""Pushes a signed consult report to the hospital's FHIR server: an HTTP POST of the
DiagnosticReport to ``<base>/DiagnosticReport``, as FHIR's RESTful create."""

from __future__ import annotations

from typing import Any

import aiohttp

from clinical.errors import ClinicalError

FHIR_JSON = "application/fhir+json"


class FhirPush:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        return f"FhirPush({self.base_url!r})"

    async def create(self, resource: dict[str, Any]) -> str:
        """The server's Location for the new resource (or its id); ClinicalError
        ``fhir-push`` when the server cannot be reached or refuses it."""
        url = f"{self.base_url}/{resource['resourceType']}"
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as session:
                async with session.post(url, json=resource, headers={
                        "Content-Type": FHIR_JSON, "Accept": FHIR_JSON}) as response:
                    body = await response.text()
                    if response.status not in (200, 201):
                        raise ClinicalError("fhir-push", f"the FHIR server answered {response.status}: "
                                                         f"{body[:200]}")
                    return response.headers.get("Location") or resource.get("id", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ClinicalError("fhir-push", f"the FHIR server cannot be reached: {type(exc).__name__}") from None
