"""Who did something, as the audit trail records it: always what the server issued
(identity, the credential and token used), never what a request claimed."""

from __future__ import annotations

from dataclasses import asdict, dataclass

SERVER = "server"  # the identity of what the server does on its own (start-up repairs)
ANONYMOUS = "anonymous"  # someone not (yet) identified: a failed login


@dataclass(frozen=True, slots=True)
class Actor:
    identity: str  # server-assigned: a token's subject, or SERVER / ANONYMOUS
    name: str = ""  # display name, free text from the token
    role: str = ""
    credential: str = ""  # what was used: "password", "admin-key", "signed-link", an invite id...
    address: str = ""  # client address as the server saw it
    token_id: str = ""  # the token's jti

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}

    @classmethod
    def server(cls) -> Actor:
        return cls(SERVER)

    @classmethod
    def anonymous(cls, address: str, credential: str = "") -> Actor:
        return cls(ANONYMOUS, credential=credential, address=address)
