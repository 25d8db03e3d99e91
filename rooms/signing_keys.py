"""The keys tokens are signed with: one current key that signs, and older ones that still
verify the tokens they signed until those expire. Each has a key id (JWT ``kid``)."""

from __future__ import annotations

from dataclasses import dataclass, field

# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32
SINGLE_KID = "k0"


@dataclass(frozen=True, slots=True)
class SigningKeys:
    current: str                                        # the kid that signs
    secrets: dict[str, str] = field(repr=False)         # kid -> secret, the current one included

    def __post_init__(self) -> None:
        if self.current not in self.secrets:
            raise ValueError("the current signing key is not among the keys")
        for secret in self.secrets.values():
            if not isinstance(secret, str) or len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
                raise ValueError(f"token secret must be at least {MIN_SECRET_BYTES} bytes")

    @classmethod
    def single(cls, secret: str) -> SigningKeys:
        """One key that never rotates: the embedded default."""
        return cls(SINGLE_KID, {SINGLE_KID: secret})

    def secret_for(self, kid: str | None) -> str | None:
        """The key named ``kid``; a token without one is from before keys had ids."""
        return self.secrets[self.current] if kid is None else self.secrets.get(kid)
