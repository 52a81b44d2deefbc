"""The local Realtime peer refuses what OpenAI's GA server refuses, and behaves as a model."""

from __future__ import annotations

import base64
import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from supactl.dev_stack.realtime_peer import PeerBehaviour, RealtimePeer
from supactl.simulator import audio

KEY = "sk-test-realtime-key"
GA_UPDATE = {"type": "session.update", "session": {
    "type": "realtime", "instructions": "Be brief.", "output_modalities": ["audio"],
    "audio": {"input": {"format": {"type": "audio/pcmu"}, "transcription": {"model": "gpt-4o-mini-transcribe"},
                        "turn_detection": {"type": "server_vad", "create_response": True,
                                           "interrupt_response": True}},
              "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}}}}


@pytest.fixture()
def peer():
    server = RealtimePeer(PeerBehaviour(api_keys=frozenset({KEY}), speed=20))
    server.start()
    yield server
    server.stop()


class Client:
    def __init__(self, peer: RealtimePeer, key: str = KEY, path: str = "/v1/realtime?model=gpt-realtime",
                 extra_protocols: tuple[str, ...] = (), headers: dict | None = None) -> None:
        protocols = ["realtime", *extra_protocols] + ([f"openai-insecure-api-key.{key}"] if key else [])
        self.ws = connect(f"ws://127.0.0.1:{peer.port}{path}", subprotocols=protocols,
                          additional_headers=headers, open_timeout=5)
        self.seen: list[dict] = []

    def send(self, event: dict) -> None:
        self.ws.send(json.dumps(event))

    def recv(self, timeout: float = 5) -> dict:
        event = json.loads(self.ws.recv(timeout))
        self.seen.append(event)
        return event

    def until(self, event_type: str, timeout: float = 10) -> dict:
        while True:
            event = self.recv(timeout)
            if event["type"] == event_type:
                return event

    def speak(self, ulaw: bytes) -> None:
        for frame in audio.frames(ulaw):
            self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(frame).decode()})

    def close(self) -> None:
        self.ws.close()


def _speech_then_silence(silence_s: float = 0.8) -> bytes:
    return audio.wav_to_ulaw(audio.sample_caller_wav()) + bytes([audio.ULAW_SILENCE]) * int(8000 * silence_s)


def _ga_client(peer: RealtimePeer) -> Client:
    client = Client(peer)
    client.until("session.created")
    client.send(GA_UPDATE)
    updated = client.until("session.updated")
    assert updated["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    return client


def test_handshake_by_subprotocol_selects_realtime_and_reports_ga_defaults(peer):
    client = Client(peer)
    created = client.recv()
    assert client.ws.subprotocol == "realtime"
    assert created["type"] == "session.created"
    assert created["session"]["type"] == "realtime"
    assert created["session"]["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert peer.sessions[0].auth == "subprotocol" and peer.sessions[0].model == "gpt-realtime"
    client.close()


def test_authorization_header_is_accepted_too(peer):
    client = Client(peer, key="", headers={"Authorization": f"Bearer {KEY}"})
    assert client.recv()["type"] == "session.created"
    assert peer.sessions[0].auth == "header"
    client.close()


@pytest.mark.parametrize("key", ["sk-wrong-key-123456", ""])
def test_bad_or_missing_key_upgrades_then_errors_and_closes_3000(peer, key):
    client = Client(peer, key=key)
    event = client.recv()
    assert event["type"] == "error" and event["error"]["code"] == "invalid_api_key"
    with pytest.raises(ConnectionClosed) as closed:
        client.recv()
    assert closed.value.rcvd.code == 3000
    assert "sk-wrong-key" not in event["error"]["message"]  # OpenAI shows only a masked key


def test_wrong_path_and_missing_model_are_refused_at_the_upgrade(peer):
    with pytest.raises(InvalidStatus) as wrong_path:
        Client(peer, path="/v1/realtime/sessions?model=gpt-realtime")
    assert wrong_path.value.response.status_code == 404
    with pytest.raises(InvalidStatus) as no_model:
        Client(peer, path="/v1/realtime")
    assert no_model.value.response.status_code == 400


@pytest.mark.parametrize("session", [
    {"modalities": ["audio", "text"], "instructions": "hi"},  # no session.type: the beta shape
    {"type": "realtime", "input_audio_format": "g711_ulaw"},  # a beta field at the top level
    {"type": "realtime", "turn_detection": {"type": "server_vad"}},
])
def test_beta_session_update_is_refused_with_close_4000(peer, session):
    client = Client(peer)
    client.until("session.created")
    client.send({"type": "session.update", "session": session})
    error = client.recv()
    assert error["error"]["code"] == "beta_api_shape_disabled"
    with pytest.raises(ConnectionClosed) as closed:
        client.recv()
    assert closed.value.rcvd.code == 4000


def test_beta_subprotocol_is_refused_with_close_4000(peer):
    client = Client(peer, extra_protocols=("openai-beta.realtime-v1",))
    assert client.recv()["error"]["code"] == "beta_api_shape_disabled"
    with pytest.raises(ConnectionClosed) as closed:
        client.recv()
    assert closed.value.rcvd.code == 4000


def test_unknown_field_discards_the_whole_update_and_output_stays_24khz_pcm(peer):
    client = Client(peer)
    client.until("session.created")
    bad = json.loads(json.dumps(GA_UPDATE))
    bad["session"]["audio"]["output"]["format"]["rate_hz"] = 8000
    client.send(bad)
    error = client.recv()
    assert error["error"]["code"] == "unknown_parameter"
    assert error["error"]["param"] == "session.audio.output.format.rate_hz"
    # The format change in the same update was discarded: a reply still comes as 24 kHz PCM.
    client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}})
    client.send({"type": "response.create"})
    delta = client.until("response.output_audio.delta")
    assert len(base64.b64decode(delta["delta"])) == 48 * 20  # 20 ms of 24 kHz 16-bit
    assert not [e for e in client.seen if e["type"] == "session.updated"]
    client.close()


@pytest.mark.parametrize("event, code", [
    ({"type": "input_audio_buffer.append"}, "missing_required_parameter"),
    ({"type": "input_audio_buffer.append", "audio": "%%%not-base64"}, "invalid_value"),
    ({"type": "response.audio.delta", "delta": ""}, "invalid_value"),  # a server event name
    ({"type": "conversation.item.truncate", "item_id": "x", "content_index": 0, "audio_end_ms": 5,
      "audio_start_ms": 0}, "unknown_parameter"),
    ({"type": "conversation.item.create", "item": {"type": "message", "role": "assistant",
                                                   "content": [{"type": "text", "text": "hi"}]}}, "invalid_value"),
    ({"type": "response.cancel"}, "response_cancel_not_active"),
])
def test_invalid_client_events_are_answered_with_an_error_and_the_session_goes_on(peer, event, code):
    client = Client(peer)
    client.until("session.created")
    client.send(event)
    assert client.until("error")["error"]["code"] == code
    client.send(GA_UPDATE)
    assert client.until("session.updated")
    client.close()


def test_loopback_detects_speech_transcribes_and_plays_it_back_in_20ms_pcmu_deltas(peer):
    client = _ga_client(peer)
    client.speak(_speech_then_silence())
    started = client.until("input_audio_buffer.speech_started")
    stopped = client.until("input_audio_buffer.speech_stopped")
    assert started["item_id"] == stopped["item_id"]
    assert 0 <= started["audio_start_ms"] < stopped["audio_end_ms"]
    done = client.until("response.done")
    types = [e["type"] for e in client.seen]
    transcription = next(e for e in client.seen
                         if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert transcription["item_id"] == started["item_id"]
    assert transcription["transcript"].startswith("[loopback]")
    deltas = [base64.b64decode(e["delta"]) for e in client.seen if e["type"] == "response.output_audio.delta"]
    assert deltas and all(len(d) == 160 for d in deltas[:-1])
    assert types.index("response.output_audio.delta") < types.index(
        "conversation.item.input_audio_transcription.completed")  # arrives after the reply began
    transcript = next(e for e in client.seen if e["type"] == "response.output_audio_transcript.done")
    assert transcript["transcript"].startswith("[loopback]")
    assert done["response"]["status"] == "completed"
    assert done["response"]["usage"]["output_tokens"] > 0
    client.close()


def test_truncate_beyond_the_audio_sent_is_refused_and_within_it_is_recorded(peer):
    client = _ga_client(peer)
    client.speak(_speech_then_silence())
    done = client.until("response.done")
    item_id = done["response"]["output"][0]["id"]
    sent_ms = sum(len(base64.b64decode(e["delta"])) for e in client.seen
                  if e["type"] == "response.output_audio.delta") // 8
    client.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                 "audio_end_ms": sent_ms + 20})
    error = client.until("error")
    assert error["error"]["param"] == "audio_end_ms"
    client.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                 "audio_end_ms": 640})
    assert client.until("conversation.item.truncated")["audio_end_ms"] == 640
    truncates = peer.sessions[0].client_events("conversation.item.truncate")
    assert [t["audio_end_ms"] for t in truncates] == [sent_ms + 20, 640]
    client.close()


def test_caller_speech_during_a_reply_cancels_it_as_openai_does():
    with RealtimePeer(PeerBehaviour(speed=1.0)) as slow_peer:
        client = _ga_client(slow_peer)
        client.speak(_speech_then_silence())
        client.until("response.output_audio.delta")
        client.speak(_speech_then_silence(0.1))
        client.until("input_audio_buffer.speech_started")
        done = client.until("response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "turn_detected"
        client.close()


def test_greeting_prompt_gets_a_spoken_reply_and_the_item_is_recorded(peer):
    client = _ga_client(peer)
    prompt = {"type": "message", "role": "user",
              "content": [{"type": "input_text", "text": "Greet the caller: Hello, Acme Dental."}]}
    client.send({"type": "conversation.item.create", "item": prompt})
    client.send({"type": "response.create"})
    done = client.until("response.done")
    assert done["response"]["status"] == "completed"
    assert any(e["type"] == "response.output_audio.delta" for e in client.seen)
    transcript = next(
        e for e in client.seen if e["type"] == "response.output_audio_transcript.done")
    assert "Hello, Acme Dental." in transcript["transcript"]
    assert peer.sessions[0].created_items == [prompt]
    client.close()


def test_a_second_response_create_during_a_reply_is_refused():
    with RealtimePeer(PeerBehaviour(speed=1.0)) as slow_peer:
        client = _ga_client(slow_peer)
        client.send({"type": "response.create"})
        client.until("response.output_audio.delta")
        client.send({"type": "response.create"})
        assert client.until("error")["error"]["code"] == "conversation_already_has_active_response"
        client.send({"type": "response.cancel"})
        assert client.until("response.done")["response"]["status"] == "cancelled"
        client.close()


def test_configured_to_drop_the_connection_mid_call():
    with RealtimePeer(PeerBehaviour(drop_after_appends=3)) as flaky:
        client = _ga_client(flaky)
        with pytest.raises(ConnectionClosed):
            client.speak(bytes([audio.ULAW_SILENCE]) * 160 * 50)
            client.until("never")
        flaky.wait_for(lambda: flaky.sessions[0].closed)
        assert len(flaky.sessions[0].client_events("input_audio_buffer.append")) == 3


def test_with_turn_detection_off_audio_waits_for_a_commit(peer):
    client = _ga_client(peer)
    client.send({"type": "input_audio_buffer.commit"})
    assert client.until("error")["error"]["code"] == "input_audio_buffer_commit_empty"
    client.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}})
    assert client.until("session.updated")["session"]["audio"]["input"]["turn_detection"] is None
    client.speak(_speech_then_silence())
    client.send({"type": "input_audio_buffer.commit"})
    committed = client.until("input_audio_buffer.committed")
    client.until("conversation.item.input_audio_transcription.completed")  # sent after any auto-reply would start
    assert not [e for e in client.seen if e["type"] in ("input_audio_buffer.speech_started", "response.created")]
    client.send({"type": "response.create"})
    done = client.until("response.done")
    assert done["response"]["status"] == "completed"
    assert committed["item_id"] != done["response"]["output"][0]["id"]
    client.close()


LOOKUP_TOOL = {"type": "function", "name": "lookup_order", "description": "Look up an order",
               "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}, "n": {"type": "integer"}},
                              "required": ["order_id", "n"]}}
END_TOOL = {"type": "function", "name": "end_call", "description": "End the call",
            "parameters": {"type": "object", "properties": {}}}


def _digit(client: Client, digit: str, item_id: str) -> None:
    client.send({"type": "conversation.item.create", "item": {
        "id": item_id, "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": f"The caller pressed {digit} on the phone keypad."}]}})
    client.send({"type": "response.create"})


def test_a_keypad_digit_makes_the_loopback_call_that_tool_and_the_output_gets_a_spoken_reply(peer):
    client = Client(peer)
    client.until("session.created")
    client.send({**GA_UPDATE, "session": {**GA_UPDATE["session"], "tools": [LOOKUP_TOOL, END_TOOL],
                                          "tool_choice": "auto"}})
    assert client.until("session.updated")["session"]["tools"][1]["name"] == "end_call"
    _digit(client, "1", "item_digit_1")
    done = client.until("response.output_item.done")["item"]
    assert (done["type"], done["name"], done["status"]) == ("function_call", "lookup_order", "completed")
    assert json.loads(done["arguments"]) == {"order_id": "loopback", "n": 1}
    assert client.until("response.done")["response"]["status"] == "completed"

    # An output for a call the conversation does not hold is refused, as the real server does.
    client.send({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_nobody", "output": "{}"}})
    error = client.until("error")["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "item.call_id")

    client.send({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": done["call_id"], "output": '{"status": "shipped"}'}})
    client.until("conversation.item.done")
    client.send({"type": "response.create"})
    transcript = client.until("response.output_audio_transcript.done")["transcript"]
    assert transcript == '[loopback] the tool answered: {"status": "shipped"}'
    client.until("response.done")
    # A digit past the tool list gets a spoken reply, not a call.
    _digit(client, "7", "item_digit_7")
    assert client.until("response.output_item.done")["item"]["type"] == "message"
    client.close()
