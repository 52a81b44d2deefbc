"""A local stand-in for Supabase Auth's admin API (GoTrue behind the API gateway).

From the shared contracts (`supabase-auth-openapi.yaml`): `GET /admin/users?page&per_page` ->
`{aud, users}`, `GET|PUT /admin/users/{uuid}`, `POST /invite {email, data?}`. The gateway wants
`apikey`; GoTrue wants a bearer whose role is service_role: a wrong apikey is the gateway's 401
`{message}`, a missing bearer 401 `no_authorization`, a bad one 401 `bad_jwt`, the anon key 403
`not_admin`, all as `{code, error_code, msg}`. `app_metadata` on PUT merges key by key and a null
deletes the key (GoTrue's `User.UpdateAppMetaData`). Invite creates a user with `invited_at` and
refuses (422 `email_exists`) an address that already has a confirmed account. Users are kept in
memory; every request is recorded.

Stricter than the real service on purpose: PUT bodies may only carry `app_metadata`.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .local_http import LocalHttpServer

USER_PATH = re.compile(r"^/admin/users/(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
DEFAULT_PER_PAGE = 50  # the spec's default


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class AuthFailure(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status, self.body = status, body


def _gotrue_error(status: int, error_code: str, msg: str) -> AuthFailure:
    return AuthFailure(status, {"code": status, "error_code": error_code, "msg": msg})


@dataclass
class AuthRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    status: int = 0

    @property
    def call(self) -> tuple[str, str]:
        return (self.method, self.path)


@dataclass
class SupabaseAuthServer(LocalHttpServer):
    service_role_key: str = field(default_factory=lambda: "sb_secret_" + secrets.token_urlsafe(24))
    anon_key: str = field(default_factory=lambda: "sb_anon_" + secrets.token_urlsafe(24))
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[AuthRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # -- test controls ---------------------------------------------------------------------
    def add_user(self, email: str, app_metadata: dict[str, Any] | None = None, *, confirmed: bool = True) -> dict:
        user = {"id": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated", "email": email,
                "email_confirmed_at": _now() if confirmed else None, "phone": "",
                "app_metadata": {"provider": "email", "providers": ["email"], **(app_metadata or {})},
                "user_metadata": {}, "identities": [], "created_at": _now(), "updated_at": _now()}
        self.users[user["id"]] = user
        return user

    def user_by_email(self, email: str) -> dict | None:
        return next((u for u in self.users.values() if u["email"] == email), None)

    def calls(self) -> list[tuple[str, str]]:
        return [r.call for r in self.requests]

    def writes(self) -> list[tuple[str, str]]:
        return [r.call for r in self.requests if r.method != "GET"]

    def assert_requests(self, expected: list[tuple[str, str]]) -> None:
        """Exactly these requests, in this order, and no other."""
        assert self.calls() == expected, f"expected {expected}, got {self.calls()}"

    # -- HTTP ------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        record = AuthRequest(handler.command, parts.path, parse_qs(parts.query), None,
                             {k.lower(): v for k, v in handler.headers.items()})
        try:
            if raw:
                if not (handler.headers.get("Content-Type") or "").startswith("application/json"):
                    raise _gotrue_error(400, "bad_json", "Content-Type must be application/json")
                try:
                    record.body = json.loads(raw)
                except ValueError:
                    raise _gotrue_error(400, "bad_json", "Could not parse request body as JSON") from None
            with self._lock:
                self._authorize(handler)
                status, body = self._route(record)
        except AuthFailure as failure:
            status, body = failure.status, failure.body
        record.status = status
        with self._lock:
            self.requests.append(record)
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _authorize(self, handler: BaseHTTPRequestHandler) -> None:
        apikey = handler.headers.get("apikey")
        if not apikey:
            raise AuthFailure(401, {"message": "No API key found in request"})
        if apikey not in (self.service_role_key, self.anon_key):
            raise AuthFailure(401, {"message": "Invalid API key",
                                    "hint": "Double check your Supabase `anon` or `service_role` API key."})
        auth = handler.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            raise _gotrue_error(401, "no_authorization", "This endpoint requires a Bearer token")
        bearer = auth[len("Bearer "):]
        if bearer == self.anon_key:
            raise _gotrue_error(403, "not_admin", "User not allowed")
        if bearer != self.service_role_key:
            raise _gotrue_error(401, "bad_jwt", "invalid JWT: unable to parse or verify signature")

    def _route(self, req: AuthRequest) -> tuple[int, Any]:
        if req.path == "/admin/users" and req.method == "GET":
            return 200, self._list(req)
        if req.path == "/invite" and req.method == "POST":
            return 200, self._invite(req.body)
        match = USER_PATH.match(req.path)
        if match and req.method in ("GET", "PUT"):
            user = self.users.get(match["id"])
            if user is None:
                raise _gotrue_error(404, "user_not_found", "User not found")
            if req.method == "PUT":
                self._update(user, req.body)
            return 200, user
        raise AuthFailure(404, {"message": "no Route matched with those values"})

    def _list(self, req: AuthRequest) -> dict:
        def number(name: str, default: int) -> int:
            value = req.query.get(name, [str(default)])[0]
            if not value.isdigit() or int(value) < 1:
                raise _gotrue_error(400, "validation_failed", f"Bad Pagination Parameters: {name}")
            return int(value)

        page, per_page = number("page", 1), number("per_page", DEFAULT_PER_PAGE)
        ordered = list(self.users.values())
        return {"aud": "authenticated", "users": ordered[(page - 1) * per_page: page * per_page]}

    def _invite(self, body: Any) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("email"), str) or "@" not in body["email"]:
            raise _gotrue_error(400, "validation_failed", "Unable to validate email address: invalid format")
        existing = self.user_by_email(body["email"].lower())
        if existing and existing.get("email_confirmed_at"):
            raise _gotrue_error(422, "email_exists", "A user with this email address has already been registered")
        user = existing or self.add_user(body["email"].lower(), confirmed=False)
        user["invited_at"] = _now()
        user["user_metadata"] = body.get("data") or user["user_metadata"]
        return user

    def _update(self, user: dict, body: Any) -> None:
        if not isinstance(body, dict) or set(body) - {"app_metadata"}:
            raise _gotrue_error(400, "validation_failed", "this stand-in accepts only app_metadata")
        changes = body.get("app_metadata")
        if changes is not None:
            if not isinstance(changes, dict):
                raise _gotrue_error(400, "bad_json", "app_metadata must be an object")
            for key, value in changes.items():
                if value is None:
                    user["app_metadata"].pop(key, None)
                else:
                    user["app_metadata"][key] = value
        user["updated_at"] = _now()
