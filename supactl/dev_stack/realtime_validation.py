"""What the OpenAI Realtime GA server refuses, checked the way it checks.

The field-level truth comes from the `openai` package's generated models (`openai.types.realtime`,
built from OpenAI's OpenAPI spec). Those models accept unknown fields silently, so every parsed
model is walked for `model_extra`. The beta shape, refused since 2026-05 with
`beta_api_shape_disabled` and close code 4000, is recognised before the models run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

# Close code the GA server uses when it sees the beta protocol (contracts README).
BETA_CLOSE_CODE = 4000

# Top-level session fields of the beta shape; GA moved them under `audio.input` / `audio.output`
# (or renamed `modalities` to `output_modalities`).
BETA_SESSION_FIELDS = frozenset({
    "modalities", "input_audio_format", "output_audio_format", "input_audio_transcription",
    "turn_detection", "voice", "input_audio_noise_reduction", "speed", "temperature",
    "max_response_output_tokens",
})
BETA_RESPONSE_FIELDS = frozenset({"modalities", "voice", "output_audio_format", "temperature",
                                  "max_response_output_tokens"})
# Client events that exist only in the beta protocol.
BETA_EVENT_TYPES = frozenset({"transcription_session.update"})


@dataclass
class RealtimeRefusal(Exception):
    """An `error` event the server sends; `close_code` set when it also closes the socket."""

    code: str
    message: str
    param: str | None = None
    error_type: str = "invalid_request_error"
    close_code: int | None = None

    def event(self, event_id: str | None = None) -> dict[str, Any]:
        error = {"type": self.error_type, "code": self.code, "message": self.message,
                 "param": self.param, "event_id": event_id}
        return {"type": "error", "error": error}


@functools.lru_cache(maxsize=1)
def _event_models() -> dict[str, Any]:
    # Imported lazily: the package takes about a second to import.
    try:
        from openai.types import realtime as rt
    except ImportError as exc:  # pragma: no cover - depends on the install
        from supactl.errors import ConfigError

        raise ConfigError(
            "the local Realtime peer needs the openai package",
            hint="install the local stack: pip install 'supactl[local]'",
        ) from exc
    return {
        "session.update": rt.SessionUpdateEvent,
        "input_audio_buffer.append": rt.InputAudioBufferAppendEvent,
        "input_audio_buffer.commit": rt.InputAudioBufferCommitEvent,
        "input_audio_buffer.clear": rt.InputAudioBufferClearEvent,
        "output_audio_buffer.clear": rt.OutputAudioBufferClearEvent,
        "conversation.item.create": rt.ConversationItemCreateEvent,
        "conversation.item.retrieve": rt.ConversationItemRetrieveEvent,
        "conversation.item.truncate": rt.ConversationItemTruncateEvent,
        "conversation.item.delete": rt.ConversationItemDeleteEvent,
        "response.create": rt.ResponseCreateEvent,
        "response.cancel": rt.ResponseCancelEvent,
    }


def known_event_types() -> frozenset[str]:
    return frozenset(_event_models())


def check_client_event(event: Any) -> Any:
    """The parsed model of a client event, or a RealtimeRefusal saying what the server says."""
    import pydantic

    if not isinstance(event, dict):
        raise RealtimeRefusal("invalid_json", "The server could not parse the event: expected an object.")
    event_type = event.get("type")
    if not isinstance(event_type, str):
        raise RealtimeRefusal("missing_required_parameter", "Missing required parameter: 'type'.", "type")
    _refuse_beta_shape(event_type, event)
    model = _event_models().get(event_type)
    if model is None:
        raise RealtimeRefusal(
            "invalid_value", f"Invalid value: '{event_type}'. Unknown client event type.", "type"
        )
    try:
        parsed = model.model_validate(event)
    except pydantic.ValidationError as exc:
        raise _refusal_from(exc) from None
    unknown = unknown_fields(parsed)
    if unknown:
        raise RealtimeRefusal("unknown_parameter", f"Unknown parameter: '{unknown[0]}'.", unknown[0])
    return parsed


def _refuse_beta_shape(event_type: str, event: dict[str, Any]) -> None:
    def beta(what: str) -> RealtimeRefusal:
        return RealtimeRefusal(
            "beta_api_shape_disabled",
            f"The Realtime beta API shape is no longer supported ({what}); use the GA shape "
            "(session.type 'realtime', audio.input/audio.output).",
            close_code=BETA_CLOSE_CODE,
        )

    if event_type in BETA_EVENT_TYPES:
        raise beta(f"event '{event_type}'")
    if event_type == "session.update":
        session = event.get("session")
        if isinstance(session, dict):
            stale = sorted(BETA_SESSION_FIELDS & session.keys())
            if stale:
                raise beta(f"session.{stale[0]}")
            if "type" not in session:
                raise beta("session.type missing")
    if event_type == "response.create":
        response = event.get("response")
        if isinstance(response, dict):
            stale = sorted(BETA_RESPONSE_FIELDS & response.keys())
            if stale:
                raise beta(f"response.{stale[0]}")


def _refusal_from(exc: Any) -> RealtimeRefusal:
    errors = exc.errors()
    # A union reports one error per candidate; the deepest location is the most specific.
    error = max(errors, key=lambda e: len(e["loc"]))
    param = ".".join(str(part) for part in error["loc"] if not _is_model_name(part))
    if error["type"] == "missing":
        return RealtimeRefusal("missing_required_parameter", f"Missing required parameter: '{param}'.", param)
    return RealtimeRefusal("invalid_value", f"Invalid value for '{param}': {error['msg']}.", param)


def _is_model_name(part: Any) -> bool:
    # pydantic names union members in error locations (`RealtimeConversationItemUserMessage`).
    return isinstance(part, str) and part[:1].isupper()


def unknown_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths of fields no model declares, anywhere in `value`."""
    from pydantic import BaseModel

    found: list[str] = []
    if isinstance(value, BaseModel):
        for name in value.model_extra or {}:
            found.append(f"{path}.{name}" if path else name)
        for name in type(value).model_fields:
            found += unknown_fields(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += unknown_fields(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += unknown_fields(item, f"{path}.{key}")
    return found
