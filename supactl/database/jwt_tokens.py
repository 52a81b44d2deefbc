"""HS256 JWTs as Supabase issues them (the local stack signs its own with a dev secret)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from supactl.errors import ConfigError

API_ROLES = ("anon", "authenticated", "service_role")  # the roles PostgREST switches to


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_hs256(claims: dict[str, Any], secret: str) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64url(signature)}"


def tenant_token(tenant_id: str, secret: str, *, subject: str, lifetime_s: int = 7 * 24 * 3600,
                 now: float | None = None) -> str:
    """A user token for `tenant_id`: what a custom access-token hook would issue."""
    issued = int(now if now is not None else time.time())
    return sign_hs256({"iss": "supactl-dev", "aud": "authenticated", "role": "authenticated",
                       "sub": subject, "tenant_id": tenant_id, "iat": issued, "exp": issued + lifetime_s},
                      secret)


def service_role_token(secret: str, *, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    return sign_hs256({"iss": "supactl-dev", "role": "service_role", "iat": issued,
                       "exp": issued + 10 * 365 * 24 * 3600}, secret)


def claims_of(token: str, secret: str | None = None) -> dict[str, Any]:
    """The claims of `token`; the signature is checked when `secret` is given."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ConfigError("the JWT is malformed (expected three dot-separated parts)",
                          hint="pass the access token itself, e.g. the JWT printed by `supactl dev`")
    try:
        header = json.loads(_unb64url(parts[0]))
        claims = json.loads(_unb64url(parts[1]))
    except ValueError:
        raise ConfigError("the JWT is malformed (its header or claims are not base64url JSON)") from None
    if secret is not None:
        if header.get("alg") != "HS256":
            raise ConfigError(f"the JWT is signed with {header.get('alg')}, expected HS256")
        expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64url(parts[2])):
            raise ConfigError("the JWT signature does not verify with this secret")
    if not isinstance(claims, dict):
        raise ConfigError("the JWT claims are not a JSON object")
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and exp < time.time():
        raise ConfigError("the JWT has expired", hint="get a fresh token (supactl dev prints one)")
    if claims.get("role", "anon") not in API_ROLES:
        raise ConfigError(f"the JWT role {claims.get('role')!r} is not one of {', '.join(API_ROLES)}")
    return claims
