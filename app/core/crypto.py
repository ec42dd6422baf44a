"""Secrets at rest: AES-GCM for what we must read back, keyed HMAC for what we only compare."""
import hashlib
import hmac
import os
import secrets
import string

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

_ALPHABET = string.ascii_letters + string.digits
_NONCE_BYTES = 12


def random_token(length: int) -> str:
    """Letters and digits only, so tokens survive copy-paste and URLs untouched."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def digest(value: str) -> str:
    """HMAC-SHA256 with the KEY_PEPPER: a stolen database alone cannot confirm a guessed key."""
    return hmac.new(current_app.config["KEY_PEPPER"], value.encode(), hashlib.sha256).hexdigest()


def encrypt(plaintext: str, *, context: str) -> bytes:
    """`context` is bound in as associated data, so a ciphertext moved to another column fails to open."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(current_app.config["CONFIG_ENCRYPTION_KEY"]).encrypt(
        nonce, plaintext.encode(), context.encode()
    )


def decrypt(blob: bytes, *, context: str) -> str:
    try:
        return AESGCM(current_app.config["CONFIG_ENCRYPTION_KEY"]).decrypt(
            blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], context.encode()
        ).decode()
    except InvalidTag:
        raise ValueError(f"cannot decrypt {context}: wrong CONFIG_ENCRYPTION_KEY or tampered data") from None
