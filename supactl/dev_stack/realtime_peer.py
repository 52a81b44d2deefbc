"""A local OpenAI Realtime (GA) server: the loopback model of `supactl dev` and the strict contract
server of the tests.

It speaks the GA protocol as the contracts README describes it and refuses what OpenAI refuses:
a wrong path, a bad key (error `invalid_api_key`, close 3000), the beta shape
(`beta_api_shape_disabled`, close 4000), unknown fields (`unknown_parameter`; a refused
`session.update` is discarded whole, so the output stays 24 kHz PCM), a truncate past the audio
sent. As a model it detects speech by frame energy and answers with the caller's own audio and a
transcript marked `[loopback]`. Every client event is recorded per session for assertions.

Run standalone: `python -m supactl.dev_stack.realtime_peer --port 8765`.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any, Callable, Sequence
from urllib.parse import parse_qs, urlsplit

from websockets.typing import Subprotocol

from supactl.dev_stack.realtime_loopback import LoopbackSession, PeerBehaviour, PeerSession
from supactl.dev_stack.realtime_validation import BETA_CLOSE_CODE, RealtimeRefusal

__all__ = ["RealtimePeer", "PeerBehaviour", "PeerSession"]

REALTIME_PATH = "/v1/realtime"
INVALID_KEY_CLOSE_CODE = 3000  # OpenAI closes with 3000 after `invalid_api_key`
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"


# --- the server --------------------------------------------------------------------------------

class RealtimePeer:
    """Serve the peer on 127.0.0.1. `start()` runs it on its own thread and returns its URL;
    `serve()` runs it inside an existing event loop."""

    def __init__(self, behaviour: PeerBehaviour | None = None, *, port: int = 0,
                 log: Callable[[str], None] | None = None) -> None:
        self.behaviour = behaviour or PeerBehaviour()
        self.port = port
        self.sessions: list[PeerSession] = []
        self._log = log
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        """The base URL a bridge uses as OPENAI_REALTIME_URL (it appends `?model=`)."""
        return f"ws://127.0.0.1:{self.port}{REALTIME_PATH}"

    def log(self, line: str) -> None:
        if self._log:
            self._log(line)

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_loopback{next(self._ids):06d}"

    # lifecycle -------------------------------------------------------------------------------
    async def serve(self) -> Any:
        from websockets.asyncio.server import serve

        self._server = await serve(
            self._handle, "127.0.0.1", self.port,
            process_request=self._check_request, select_subprotocol=_select_subprotocol,
            max_size=2**24, ping_interval=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self._server

    def start(self) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="realtime-peer", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self.url

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> "RealtimePeer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll `predicate` from a test thread until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise TimeoutError("the realtime peer did not reach the expected state")

    # connection ------------------------------------------------------------------------------
    def _check_request(self, connection: Any, request: Any) -> Any:
        from http import HTTPStatus

        parts = urlsplit(request.path)
        if parts.path.rstrip("/") != REALTIME_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, f"Invalid URL (GET {parts.path})\n")
        model = parse_qs(parts.query).get("model", [""])[0]
        if not model:
            return connection.respond(HTTPStatus.BAD_REQUEST, "Missing required parameter: 'model'.\n")
        return None

    async def _handle(self, ws: Any) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        request = ws.request
        offered = _offered_subprotocols(request.headers)
        key, how = _api_key(request.headers, offered)
        model = parse_qs(urlsplit(request.path).query).get("model", [""])[0]
        record = PeerSession(len(self.sessions) + 1, model, how, offered)
        self.sessions.append(record)
        session = LoopbackSession(self, ws, record)
        self.log(f"session {record.number}: connected (model {model}, key by {how})")
        try:
            refusal = self._refusal_at_connect(key, offered, request.headers)
            if refusal is not None:
                await session.refuse(refusal)
                return
            await session.run()
        except Exception as exc:  # a closed socket mid-send ends the session, nothing else
            from websockets.exceptions import ConnectionClosed

            if not isinstance(exc, ConnectionClosed):
                self.log(f"session {record.number}: crashed: {exc!r}")
                raise
        finally:
            session.cancel_response("session_closed")
            record.closed = True
            if record.close_code is None and ws.close_code is not None:
                record.close_code = ws.close_code
            self.log(f"session {record.number}: closed ({record.close_code})")
            if task is not None:
                self._tasks.discard(task)

    def _refusal_at_connect(self, key: str | None, offered: list[str], headers: Any) -> RealtimeRefusal | None:
        b = self.behaviour
        if not key or b.refuse_all_keys or (b.api_keys is not None and key not in b.api_keys):
            shown = f"{key[:3]}…{key[-4:]}" if key and len(key) > 8 else "(none)"
            return RealtimeRefusal("invalid_api_key", f"Incorrect API key provided: {shown}.",
                                   close_code=INVALID_KEY_CLOSE_CODE)
        if BETA_SUBPROTOCOL in offered or "realtime=v1" in headers.get("OpenAI-Beta", ""):
            return RealtimeRefusal("beta_api_shape_disabled",
                                   "The Realtime beta API shape is no longer supported; drop OpenAI-Beta.",
                                   close_code=BETA_CLOSE_CODE)
        return None


def _offered_subprotocols(headers: Any) -> list[str]:
    return [p.strip() for value in headers.get_all("Sec-WebSocket-Protocol") for p in value.split(",") if p.strip()]


def _api_key(headers: Any, offered: list[str]) -> tuple[str | None, str]:
    for protocol in offered:
        if protocol.startswith(KEY_SUBPROTOCOL_PREFIX):
            return protocol[len(KEY_SUBPROTOCOL_PREFIX):], "subprotocol"
    authorization = headers.get("Authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip(), "header"
    return None, "none"


def _select_subprotocol(connection: Any, subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
    # OpenAI answers with `realtime`; the key subprotocol is never echoed.
    return Subprotocol("realtime") if "realtime" in subprotocols else None


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="A local OpenAI Realtime GA peer (loopback model).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", action="append", help="accept only this key (repeatable)")
    parser.add_argument("--speed", type=float, default=1.0, help="reply audio pace; 1.0 = real time")
    args = parser.parse_args(argv)
    behaviour = PeerBehaviour(api_keys=frozenset(args.api_key) if args.api_key else None, speed=args.speed)
    peer = RealtimePeer(behaviour, port=args.port, log=lambda line: print(line, flush=True))
    print(f"loopback realtime peer at {peer.start()}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        peer.stop()


if __name__ == "__main__":
    main()
