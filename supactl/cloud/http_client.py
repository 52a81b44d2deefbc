"""One way to talk HTTP to the services supactl drives (Supabase Management API, Twilio).

`api_client(...)` returns a plain `httpx.Client` whose transport retries 429, 5xx and connection
errors with exponential backoff and jitter (honouring `Retry-After`), and whose response hook
turns any error status into one `ApiError` line rendered by the service's own `render_error`.
Library functions take that client as a parameter, so tests bind it to a contract server.
Every message and `--verbose` trace line passes through `supactl.redact`.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import httpx

from supactl.errors import ApiError
from supactl.redact import redact

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# Generous read/write: a function upload is a few hundred kB and the API bundles it before answering.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def first_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.strip().split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def default_render_error(response: httpx.Response) -> str:
    """Best effort for a service without its own renderer: a JSON `message`/`error`, else the body."""
    try:
        body = response.json()
    except ValueError:
        return first_line(response.text) or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "msg", "error_description", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return first_line(body[key])
    return first_line(response.text)


@dataclass(frozen=True)
class Service:
    """What differs between services: a name for messages, how an error body reads as one line,
    and an optional hint per status (e.g. 401 -> which variable holds the credential)."""

    name: str
    render_error: Callable[[httpx.Response], str] = default_render_error
    hint_for_status: Callable[[int], str | None] = lambda status: None


@dataclass
class RetryPolicy:
    attempts: int = 5  # total tries, the first included
    base_delay: float = 0.5
    max_delay: float = 20.0
    # A Retry-After longer than this is not waited out: the command fails and says when to retry.
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based): exponential, with "equal jitter" so many
        clients hitting a 429 at once spread out but each still waits at least half the step."""
        step = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return step / 2 + step / 2 * self.random()


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


Trace = Callable[[str], None]


class RetryingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, service: Service, policy: RetryPolicy,
                 trace: Trace | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.service = service
        self.policy = policy
        self.trace = trace
        self.clock = clock

    def _say(self, text: str) -> None:
        if self.trace:
            self.trace(redact(text))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = f"{request.method} {_safe_url(request.url)}"
        for attempt in range(1, self.policy.attempts + 1):
            last = attempt == self.policy.attempts
            started = self.clock()
            self._say(f"-> {target}" + (f" (attempt {attempt})" if attempt > 1 else ""))
            try:
                response = self.inner.handle_request(request)
            except httpx.TransportError as exc:
                self._say(f"<- {type(exc).__name__}: {exc}")
                if last:
                    raise ApiError(
                        redact(f"could not reach {self.service.name} ({target}): {exc or type(exc).__name__}"),
                        hint="check the network, or the base URL override if you set one",
                    ) from None
                self._wait(self.policy.backoff(attempt), "connection error")
                continue
            elapsed_ms = (self.clock() - started) * 1000
            self._say(f"<- {response.status_code} {target} ({elapsed_ms:.0f} ms)")
            if response.status_code not in RETRY_STATUSES or last:
                return response
            delay = self.policy.backoff(attempt)
            advised = retry_after_seconds(response.headers.get("retry-after"))
            response.read()
            response.close()
            if advised is not None:
                if advised > self.policy.max_retry_after:
                    raise ApiError(
                        f"{self.service.name} is rate limiting requests ({target}, HTTP {response.status_code})",
                        hint=f"retry in {advised:.0f} s",
                        status=response.status_code,
                    )
                delay = max(delay, advised)
            self._wait(delay, f"HTTP {response.status_code}")
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wait(self, seconds: float, why: str) -> None:
        self._say(f"   retrying in {seconds:.2f} s after {why}")
        self.policy.sleep(seconds)

    def close(self) -> None:
        self.inner.close()


def _safe_url(url: httpx.URL) -> str:
    # Userinfo would carry Basic credentials; query strings are kept (they name resources, not secrets).
    return str(url.copy_with(username=None, password=None))


def raise_for_service(service: Service) -> Callable[[httpx.Response], None]:
    def hook(response: httpx.Response) -> None:
        if response.is_success or response.is_redirect:
            return
        response.read()
        detail = service.render_error(response) or response.reason_phrase
        request = response.request
        raise ApiError(
            redact(f"{service.name}: {detail} (HTTP {response.status_code} on {request.method} "
                   f"{request.url.path})"),
            hint=service.hint_for_status(response.status_code),
            status=response.status_code,
        )

    return hook


def api_client(
    base_url: str,
    service: Service,
    *,
    headers: dict[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
    trace: Trace | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An httpx.Client for one service. Pass `transport` to wrap something other than the network
    (httpx.MockTransport); pass `retry=RetryPolicy(sleep=fake)` so tests never wait."""
    from supactl import __version__

    inner = transport or httpx.HTTPTransport()
    all_headers = {"User-Agent": f"supactl/{__version__}"}
    all_headers.update(headers or {})
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        headers=all_headers,
        auth=auth,
        timeout=timeout,
        transport=RetryingTransport(inner, service, retry or RetryPolicy(), trace),
        event_hooks={"response": [raise_for_service(service)]},
    )


@dataclass
class TraceLog:
    """A `trace` sink that keeps lines (tests) and optionally forwards them (the CLI's --verbose)."""

    forward: Trace | None = None
    lines: list[str] = field(default_factory=list)

    def __call__(self, line: str) -> None:
        line = redact(line)
        self.lines.append(line)
        if self.forward:
            self.forward(line)
