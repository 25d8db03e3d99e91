"""Encryption at rest: a master key ring wrapping per-object data keys (envelope
encryption), and an append-only AES-256-GCM chunked stream. Imports nothing of ours."""

from .byte_source import ByteSource, FileSource
from .errors import VaultError
from .keyring import KeyRing
from .reader import EncryptedReader
from .rewrap import rewrap_file, rewrap_tree
from .writer import EncryptedWriter

__all__ = ["ByteSource", "EncryptedReader", "EncryptedWriter", "FileSource", "KeyRing", "VaultError",
           "rewrap_file", "rewrap_tree"]
