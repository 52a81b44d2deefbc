import assert from "node:assert/strict";
import {
  apologyTwiml,
  connectStreamTwiml,
  dialTwiml,
  escapeXml,
  hangUpTwiml,
  notInServiceTwiml,
  startingRecording,
  twimlResponse,
} from "./twiml.ts";

Deno.test("connect answers a stream to the function with its parameters", () => {
  const twiml = connectStreamTwiml({
    actionUrl: "https://ref.supabase.co/functions/v1/twilio-voice",
    streamUrl: "wss://ref.supabase.co/functions/v1/twilio-voice",
    parameters: { tenant_id: "t-1", token: "abc" },
  });
  assert.equal(
    twiml,
    '<?xml version="1.0" encoding="UTF-8"?><Response>' +
      '<Connect action="https://ref.supabase.co/functions/v1/twilio-voice" method="POST">' +
      '<Stream url="wss://ref.supabase.co/functions/v1/twilio-voice">' +
      '<Parameter name="tenant_id" value="t-1"/><Parameter name="token" value="abc"/>' +
      "</Stream></Connect></Response>",
  );
});

Deno.test("values that look like markup are escaped, not injected", () => {
  const twiml = connectStreamTwiml({
    actionUrl: "https://x.test/f?a=1&b=2",
    streamUrl: "wss://x.test/f",
    parameters: { to_number: `"/><Hangup/><x a='` },
  });
  assert.ok(!twiml.includes("<Hangup/>"));
  assert.ok(twiml.includes("a=1&amp;b=2"));
  assert.ok(twiml.includes("&quot;/&gt;&lt;Hangup/&gt;&lt;x a=&apos;"));
  assert.equal(escapeXml(`<&>"'`), "&lt;&amp;&gt;&quot;&apos;");
});

Deno.test("not-in-service and apology say something, then hang up", () => {
  for (const twiml of [notInServiceTwiml(), apologyTwiml()]) {
    assert.match(
      twiml,
      /^<\?xml version="1.0" encoding="UTF-8"\?><Response><Say>[^<]+<\/Say><Hangup\/><\/Response>$/,
    );
  }
  assert.match(notInServiceTwiml(), /not in service/);
  assert.match(apologyTwiml(), /Sorry/);
  assert.equal(hangUpTwiml(), '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>');
});

Deno.test("TwiML is served as XML", async () => {
  const response = twimlResponse(hangUpTwiml());
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/xml; charset=utf-8");
  assert.equal(await response.text(), hangUpTwiml());
});

Deno.test("a transfer dials the number with the called number as caller ID, and asks back how it went", () => {
  assert.equal(
    dialTwiml({
      actionUrl: "https://x.example/twilio-voice?event=dial-status",
      callerId: "+15550001111",
      number: "+15550001234",
    }),
    '<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="https://x.example/twilio-voice?event=dial-status" ' +
      'method="POST" callerId="+15550001111"><Number>+15550001234</Number></Dial></Response>',
  );
});

Deno.test("a recorded call starts a dual-channel recording before its stream, callback escaped", () => {
  const stream = connectStreamTwiml({
    actionUrl: "https://x.test/f",
    streamUrl: "wss://x.test/f",
    parameters: {},
  });
  const twiml = startingRecording(stream, "https://x.test/f?event=recording-status&x=1");
  assert.equal(
    twiml,
    stream.replace(
      "<Response>",
      '<Response><Start><Recording channels="dual" recordingStatusCallback=' +
        '"https://x.test/f?event=recording-status&amp;x=1" recordingStatusCallbackMethod="POST" ' +
        'recordingStatusCallbackEvent="completed absent"/></Start>',
    ),
  );
  assert.ok(twiml.indexOf("<Start>") < twiml.indexOf("<Connect"));
});
