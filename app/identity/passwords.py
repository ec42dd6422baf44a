"""Password policy and bcrypt hashing, shared by tenant users and platform admins."""
import bcrypt
from flask import current_app

from app.core.errors import InvalidInput

MIN_LENGTH = 8
MAX_BYTES = 72  # bcrypt ignores everything past 72 bytes; refuse rather than silently truncate


def check_policy(password: str, *, param: str = "password") -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"Password must be at least {MIN_LENGTH} characters.", code="weak_password", param=param)
    if len(password.encode()) > MAX_BYTES:
        raise InvalidInput(f"Password must be at most {MAX_BYTES} bytes.", code="password_too_long", param=param)


def hash_password(password: str) -> str:
    check_policy(password)
    rounds = current_app.config["BCRYPT_ROUNDS"]
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


# A real hash to compare against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH: dict[int, bytes] = {}


def verify_password(password: str, password_hash: str | None) -> bool:
    raw = password.encode()[:MAX_BYTES]
    if password_hash is None:
        rounds = current_app.config["BCRYPT_ROUNDS"]
        dummy = _DUMMY_HASH.setdefault(rounds, bcrypt.hashpw(b"not-a-password", bcrypt.gensalt(rounds)))
        bcrypt.checkpw(raw, dummy)
        return False
    return bcrypt.checkpw(raw, password_hash.encode())
