"""The call simulator behaves like Twilio: TwiML, signatures, media pacing, marks, clear, handoffs."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
from websockets.sync.server import serve

from supactl.simulator import audio
from supactl.simulator.call_script import Caller, Dtmf, Hearing, HangUp, Play, Silence, WaitForReply
from supactl.simulator.simulated_call import CallFailed, CallOptions, PlayoutQueue, place_call
from supactl.simulator.twiml import TwimlError, parse_twiml
from supactl.twilio_signature import sign

TOKEN = "twilio-test-auth-token"


# --- TwiML ------------------------------------------------------------------------------------

def test_parses_connect_stream_with_parameters_and_resolves_a_relative_action():
    twiml = parse_twiml(
        '<?xml version="1.0"?><Response><Connect action="/functions/v1/twilio-voice?next=1">'
        '<Stream url="wss://ref.supabase.co/functions/v1/twilio-voice">'
        '<Parameter name="tenant" value="t-1"/><Parameter name="token" value="a&amp;b"/></Stream>'
        "</Connect></Response>",
        "https://ref.supabase.co/functions/v1/twilio-voice",
    )
    assert twiml.connect is not None
    assert twiml.connect.url == "wss://ref.supabase.co/functions/v1/twilio-voice"
    assert twiml.connect.parameters == {"tenant": "t-1", "token": "a&b"}
    assert twiml.connect.action == "https://ref.supabase.co/functions/v1/twilio-voice?next=1"
    assert twiml.connect.method == "POST"


def test_parses_say_then_hangup_and_ignores_what_follows_hangup():
    twiml = parse_twiml("<Response><Say>Sorry, we are having trouble.</Say><Hangup/><Say>never</Say></Response>",
                        "https://x.test/")
    assert twiml.says == ["Sorry, we are having trouble."]
    assert twiml.hangup and twiml.connect is None


@pytest.mark.parametrize("body, message", [
    ("<Response><Connect><Stream url='wss://x.test/s?tenant=1'/></Connect></Response>", "query string"),
    ("<Response><Connect><Stream url='https://x.test/s'/></Connect></Response>", "ws:// or wss://"),
    ("<Response><Connect/></Response>", "exactly one <Stream>"),
    ("<Response><Enqueue>support</Enqueue></Response>", "does not understand"),
    ("<Response><Dial><Number>555-0199</Number></Dial></Response>", "is not E.164"),
    ("<Response><Dial callerId='Acme'><Number>+14155550199</Number></Dial></Response>", "callerId"),
    ("<Response><Dial><Number>+14155550199</Number><Number>+14155550198</Number></Dial></Response>", "more than one"),
    ("<Reply/>", "not <Response>"),
    ("<Response><Say>", "invalid XML"),
])
def test_refuses_twiml_twilio_would_refuse(body, message):
    with pytest.raises(TwimlError, match=message):
        parse_twiml(body, "https://x.test/")


def test_a_transfer_is_read_with_its_number_caller_id_and_absolute_action():
    twiml = parse_twiml("<Response><Dial action='dial-status' callerId='+14155550100'>"
                        "<Number>+14155550199</Number></Dial><Say>never</Say></Response>",
                        "https://x.test/functions/v1/twilio-voice/after")
    assert twiml.dial is not None and twiml.connect is None and twiml.says == []
    assert (twiml.dial.number, twiml.dial.caller_id, twiml.dial.action, twiml.dial.method) == (
        "+14155550199", "+14155550100", "https://x.test/functions/v1/twilio-voice/dial-status", "POST")


# --- playout, marks and clear -----------------------------------------------------------------

def test_a_mark_is_released_only_once_the_audio_before_it_has_played():
    queue = PlayoutQueue()
    queue.add_audio(b"\x01" * 400)
    queue.add_mark("after-400")
    queue.add_audio(b"\x02" * 160)
    assert queue.play() == (b"\x01" * 160, [])
    assert queue.play() == (b"\x01" * 160, [])
    played, marks = queue.play()
    assert played == b"\x01" * 80 + b"\x02" * 80 and marks == ["after-400"]
    assert queue.queued_bytes == 80


def test_clear_drops_queued_audio_and_returns_every_pending_mark():
    queue = PlayoutQueue()
    for name in ("a", "b"):
        queue.add_audio(b"\x01" * 320)
        queue.add_mark(name)
    queue.play()
    assert queue.clear() == ["a", "b"]
    assert queue.queued_bytes == 0 and queue.play() == (b"", [])


def test_caller_plays_frames_then_waits_for_the_reply_to_end():
    caller = Caller([Play(b"\x10" * 400), WaitForReply(start_within=1.0, quiet=0.2), Dtmf("12"), HangUp(False)])
    moves = [caller.next_move(Hearing(t * 0.02, 0, None)) for t in range(3)]
    assert [len(m.frame) for m in moves] == [160, 160, 160] and [m.speech_ended for m in moves] == [0, 0, 1]
    assert caller.next_move(Hearing(0.1, 40, 0.1)).frame is None  # reply playing: silence
    assert caller.next_move(Hearing(0.2, 0, 0.15)).digits == ""  # quiet for 50 ms only
    assert caller.next_move(Hearing(0.4, 0, 0.15)).digits == "12"
    hang_up = caller.next_move(Hearing(0.42, 0, 0.15)).hang_up
    assert hang_up is not None and hang_up.send_stop is False


# --- a whole call against a scripted function -------------------------------------------------

class ScriptedFunction:
    """Just enough of the bridge to observe the simulator: verifies every signature, streams
    scripted audio, closes the first stream to force a handoff, records what arrived."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.posts: list[dict] = []
        self.streams: list[list[dict]] = []
        self.mark_echo_delay: dict[str, float] = {}
        self.refused_upgrades = 0
        # The server reads frames on its own thread, which may lag behind the caller's close:
        # set once the last stream has read its `stop`, so the test asserts on everything.
        self.last_stream_done = threading.Event()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._http_handler())
        self.ws = serve(self._stream, "127.0.0.1", 0, process_request=self._check_upgrade)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/functions/v1/twilio-voice"
        self.stream_url = f"ws://127.0.0.1:{self.ws.socket.getsockname()[1]}/functions/v1/twilio-voice"
        for target in (self.http.serve_forever, self.ws.serve_forever):
            threading.Thread(target=target, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.ws.shutdown()

    def _twiml(self, n: int) -> str:
        return (f'<Response><Connect action="{self.url}"><Stream url="{self.stream_url}">'
                f'<Parameter name="tenant" value="t1"/><Parameter name="leg" value="{n}"/></Stream></Connect></Response>')

    def _http_handler(self):
        function = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                params = dict(parse_qsl(body))
                expected = sign(function.token, function.url, params)
                if self.headers.get("X-Twilio-Signature") != expected:
                    self.send_response(403)
                    self.end_headers()
                    return
                function.posts.append(params)
                text = function._twiml(len(function.posts)) if len(function.posts) <= 2 else \
                    "<Response><Hangup/></Response>"
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.end_headers()
                self.wfile.write(text.encode())

        return Handler

    def _check_upgrade(self, connection, request):
        if request.headers.get("X-Twilio-Signature") != sign(self.token, self.stream_url, {}):
            self.refused_upgrades += 1
            return connection.respond(403, "bad signature\n")
        return None

    def _stream(self, ws):
        frames: list[dict] = []
        self.streams.append(frames)
        leg = len(self.streams)

        def receive_until(predicate, timeout=10.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                frame = json.loads(ws.recv(timeout))
                frame["_at"] = time.monotonic()
                frames.append(frame)
                if predicate(frame):
                    return frame
            raise AssertionError("the simulator never sent the expected frame")

        receive_until(lambda f: f["event"] == "start")
        sid = frames[-1]["streamSid"]
        payload = base64.b64encode(bytes([0x10]) * 160).decode()
        if leg == 1:
            sent = time.monotonic()
            for _ in range(10):  # 200 ms of audio, then a mark
                ws.send(json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}}))
            ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "played-200ms"}}))
            receive_until(lambda f: f["event"] == "mark")
            self.mark_echo_delay["played-200ms"] = time.monotonic() - sent
            for _ in range(100):  # 2 s of audio the caller will not hear to the end
                ws.send(json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}}))
            ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "cleared"}}))
            time.sleep(0.1)
            cleared = time.monotonic()
            ws.send(json.dumps({"event": "clear", "streamSid": sid}))
            receive_until(lambda f: f["event"] == "mark")
            self.mark_echo_delay["cleared"] = time.monotonic() - cleared
            ws.close()  # hand off: the simulator must ask the action for the next TwiML
            return
        receive_until(lambda f: f["event"] == "stop")
        self.last_stream_done.set()


@pytest.fixture()
def function():
    fake = ScriptedFunction()
    yield fake
    fake.close()


def test_simulated_call_signs_streams_echoes_marks_honours_clear_and_follows_the_handoff(function, tmp_path):
    options = CallOptions(function_url=function.url, auth_token=TOKEN, to_number="+15555550100",
                          record_to=tmp_path / "heard.wav")
    script = [Silence(3.2), Play(bytes([0x20]) * 1600), Dtmf("5"), Silence(0.2), HangUp()]
    report = place_call(options, script)
    assert function.last_stream_done.wait(10), "the scripted function never read the caller's stop"

    webhook, action = function.posts
    assert webhook["CallSid"] == action["CallSid"] == report.call_sid
    assert webhook["CallSid"].startswith("CA") and len(webhook["CallSid"]) == 34
    assert (webhook["CallStatus"], webhook["Direction"], webhook["ApiVersion"]) == ("ringing", "inbound", "2010-04-01")
    assert webhook["To"] == "+15555550100" and action["CallStatus"] == "in-progress"
    assert function.refused_upgrades == 0

    first, second = function.streams
    connected, start = first[0], first[1]
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0", "_at": connected["_at"]}
    assert start["start"]["callSid"] == report.call_sid
    assert start["start"]["customParameters"] == {"tenant": "t1", "leg": "1"}
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert start["start"]["tracks"] == ["inbound"]
    media = [f for f in first if f["event"] == "media"]
    assert [f["media"]["chunk"] for f in media[:3]] == ["1", "2", "3"]
    assert all(isinstance(f["media"]["timestamp"], str) for f in media)
    sequence = [int(f["sequenceNumber"]) for f in first if "sequenceNumber" in f]
    assert sequence == list(range(1, len(sequence) + 1))
    # Real-time pacing: 20 ms per frame.
    pace = (media[-1]["_at"] - media[0]["_at"]) / (len(media) - 1)
    assert 0.015 < pace < 0.03

    # The mark after 200 ms of audio comes back once that audio has played, not before.
    assert 0.18 <= function.mark_echo_delay["played-200ms"] < 0.6
    # After `clear`, the pending mark comes back at once though 2 s of audio were queued.
    assert function.mark_echo_delay["cleared"] < 0.15
    assert report.clears == 1 and report.marks_received == 2 and report.marks_echoed == 2

    assert second[1]["start"]["customParameters"]["leg"] == "2"
    assert [f["dtmf"] for f in second if f["event"] == "dtmf"] == [{"track": "inbound_track", "digit": "5"}]
    assert second[-1]["event"] == "stop" and second[-1]["stop"]["callSid"] == report.call_sid
    assert report.streams == 2 and len(report.handoffs) == 1 and report.handoffs[0].gap_ms is not None
    assert report.ended_by == "caller"
    assert report.frames_received == 110
    assert audio.read_wav(tmp_path / "heard.wav").rate == 8000
    assert report.heard_ms >= 200


def test_a_wrong_auth_token_is_reported_with_the_fix(function):
    options = CallOptions(function_url=function.url, auth_token="not-the-function-token")
    with pytest.raises(CallFailed, match="HTTP 403") as failed:
        place_call(options, [HangUp()])
    assert "TWILIO_AUTH_TOKEN" in failed.value.hint


def test_an_unreachable_function_is_reported_clearly():
    options = CallOptions(function_url="http://127.0.0.1:9/functions/v1/twilio-voice", auth_token=TOKEN)
    with pytest.raises(CallFailed, match="cannot reach the function"):
        place_call(options, [HangUp()])


def test_a_function_that_accepts_but_never_answers_is_reported_as_stuck_not_unreachable(monkeypatch):
    import socket

    from supactl.simulator import simulated_call

    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the backlog), never answers
    monkeypatch.setattr(simulated_call, "TWIML_TIMEOUT_S", 0.5)
    try:
        options = CallOptions(function_url=f"http://127.0.0.1:{listener.getsockname()[1]}/functions/v1/twilio-voice",
                              auth_token=TOKEN)
        with pytest.raises(CallFailed, match="did not answer within 0.5 s") as failed:
            place_call(options, [HangUp()])
        assert "stuck" in failed.value.hint
    finally:
        listener.close()


def test_reply_latency_counts_from_the_last_spoken_frame_not_the_end_of_the_file():
    speech = Play(bytes([0x10]) * 320 + bytes([audio.ULAW_SILENCE]) * 800)
    assert speech.speech_end == 320
    caller = Caller([speech])
    ended = [caller.next_move(Hearing(t * 0.02, 0, None)).speech_ended for t in range(7)]
    assert ended == [False, True, False, False, False, False, False]


def test_call_command_without_a_function_url_says_how_to_get_one(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from supactl.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["call"])
    assert result.exit_code == 2
    assert "no function URL" in result.output and "supactl dev" in result.output


def test_call_command_reports_a_refused_signature_without_printing_the_token(function, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from supactl.cli import app

    monkeypatch.chdir(tmp_path)
    secret = "wrong-token-that-must-not-leak"
    result = CliRunner().invoke(app, ["call", function.url, "--auth-token", secret, "--to", "+15555550100"])
    assert result.exit_code == 1
    assert "HTTP 403" in result.output and "TWILIO_AUTH_TOKEN" in result.output
    assert secret not in result.output
