"""Pulling DICOM from a PACS over DICOMweb: a WADO-RS retrieve of a study, a series or
one instance, by UID, read one instance at a time.

Only the transport is checked here (UIDs, HTTP status, multipart framing, part type
and size). Each instance is then an untrusted file like any upload: the caller
validates it the same way.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import Any

import aiohttp
from aiohttp import BodyPartReader, MultipartReader, hdrs

from clinical.dicom_transfer import DEFAULT_MAX_SIZE
from clinical.errors import ClinicalError, describe
from clinical.fields import check_type, reject_unknown, require_mapping

PULL = "dicom-pull"
MAX_INSTANCES = 200
# `transfer-syntax=*`: the files as the PACS stores them, not transcoded, so what the
# room shares is byte for byte what the PACS holds.
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
_READ = 64 * 1024

# PS3.5 9.1: digit components separated by dots, no leading zeros, at most 64
# characters. Nothing else can reach a URL path.
_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")
_REF = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _check_uid(value: object, key: str) -> str:
    if not isinstance(value, str) or len(value) > 64 or not _UID.fullmatch(value):
        raise ClinicalError("pacs-uid", f"{key} is not a DICOM UID (digits and dots, at most 64)")
    return value


@dataclass(frozen=True)
class PullRequest:
    """What to retrieve: a study, one of its series, or one instance of that series."""

    study_uid: str
    series_uid: str | None = None
    instance_uid: str | None = None
    ref: str | None = None

    @classmethod
    def from_message(cls, msg: Any) -> PullRequest:
        msg = require_mapping(msg, PULL)
        reject_unknown(msg, {"type", "study_uid", "series_uid", "instance_uid", "ref"}, PULL)
        check_type(msg, PULL, PULL)
        ref = msg.get("ref")
        if ref is not None and (not isinstance(ref, str) or not _REF.fullmatch(ref)):
            raise ClinicalError(PULL, "ref must match [A-Za-z0-9._-]{1,64}")
        series, instance = msg.get("series_uid"), msg.get("instance_uid")
        if instance is not None and series is None:
            raise ClinicalError("pacs-uid", "instance_uid needs its series_uid")
        return cls(
            _check_uid(msg.get("study_uid"), "study_uid"),
            None if series is None else _check_uid(series, "series_uid"),
            None if instance is None else _check_uid(instance, "instance_uid"),
            ref,
        )

    @property
    def path(self) -> str:
        path = f"/studies/{self.study_uid}"
        if self.series_uid:
            path += f"/series/{self.series_uid}"
            if self.instance_uid:
                path += f"/instances/{self.instance_uid}"
        return path

    @property
    def what(self) -> str:
        return "instance" if self.instance_uid else "series" if self.series_uid else "study"


class DicomWebSource:
    """A DICOMweb server, e.g. Orthanc's plugin at ``http://127.0.0.1:8042/dicom-web``.

    ``timeout`` bounds connecting and each wait for data, not the whole retrieve: a
    large study may take long, but a silent PACS is given up on.
    """

    def __init__(self, base_url: str, username: str | None = None, password: str | None = None,
                 timeout: float = 30.0, max_size: int = DEFAULT_MAX_SIZE,
                 max_instances: int = MAX_INSTANCES) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": ACCEPT}
        if username:
            self._headers["Authorization"] = aiohttp.encode_basic_auth(username, password or "")
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self.max_size = max_size
        self.max_instances = max_instances
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # keeps the password out of logs and tracebacks
        return f"DicomWebSource({self.base_url!r})"

    async def instances(self, request: PullRequest) -> AsyncIterator[bytes]:
        """Yield each retrieved instance's bytes; close it with ``contextlib.aclosing``."""
        try:
            # No redirects: the credentials go to the configured PACS and nowhere else.
            async with self._http().get(self.base_url + request.path, allow_redirects=False) as response:
                _check_status(response.status, request.what)
                reader = _multipart(response.headers, response.content)
                count = 0
                while True:
                    part = await reader.next()
                    if part is None:
                        return
                    count += 1
                    if count > self.max_instances:
                        raise ClinicalError("pacs-too-many",
                                            f"the {request.what} has more than {self.max_instances} instances")
                    yield await self._read_part(part)
        # Connection details stay in the chained cause, for the server log: the PACS's
        # address is none of the requester's business.
        except ClinicalError:
            raise
        except aiohttp.ClientConnectorError as exc:
            raise ClinicalError("pacs-unreachable", "cannot connect to the PACS") from exc
        except TimeoutError as exc:  # aiohttp's socket timeouts derive from it too
            raise ClinicalError("pacs-timeout", "the PACS did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise ClinicalError("pacs-error", "the connection to the PACS failed") from exc
        except (ValueError, KeyError, RuntimeError) as exc:  # aiohttp's multipart parser
            raise ClinicalError("pacs-multipart", f"malformed multipart answer: {describe(exc)}") from exc

    async def _read_part(self, part: MultipartReader | BodyPartReader) -> bytes:
        if not isinstance(part, BodyPartReader):
            raise ClinicalError("pacs-multipart", "nested multipart in the answer")
        media_type, _ = _media_type(part.headers.get(hdrs.CONTENT_TYPE, ""))
        if media_type != "application/dicom":
            raise ClinicalError("pacs-not-dicom",
                                f"the PACS sent a part of type {media_type[:80]}, not application/dicom")
        data = bytearray()
        while chunk := await part.read_chunk(_READ):
            data += chunk
            if len(data) > self.max_size:
                raise ClinicalError("dicom-too-large", f"an instance exceeds {self.max_size} bytes")
        return bytes(data)

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use: it must belong to the running loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _check_status(status: int, what: str) -> None:
    if status == 200:
        return
    if status == 404:
        raise ClinicalError("pacs-not-found", f"the PACS has no {what} with that UID")
    if status in (401, 403):
        raise ClinicalError("pacs-forbidden", f"the PACS refused our credentials (HTTP {status})")
    raise ClinicalError("pacs-error", f"the PACS answered HTTP {status}")


def _multipart(headers: Mapping[str, str], content: aiohttp.StreamReader) -> MultipartReader:
    media_type, params = _media_type(headers.get(hdrs.CONTENT_TYPE, ""))
    root_type = params.get("type", "application/dicom").lower()
    if media_type != "multipart/related" or root_type != "application/dicom":
        raise ClinicalError("pacs-multipart", 'the PACS did not answer multipart/related; '
                            'type="application/dicom"')
    if not params.get("boundary"):
        raise ClinicalError("pacs-multipart", "the PACS answer has no multipart boundary")
    return MultipartReader(headers, content)


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    """``multipart/related`` and its parameters, lowercased and unquoted (stdlib parser)."""
    header = Message()
    header[hdrs.CONTENT_TYPE] = value
    params = header.get_params(failobj=[])[1:]
    return header.get_content_type(), {k: collapse_rfc2231_value(v) for k, v in params}
