// Twilio's status and recording callbacks through the function's HTTP surface, against real
// Postgres: signed callbacks land on the call row in any order and any number of retries, a forged
// or malformed one stores nothing, and a call hung up during a handoff is finalized.

import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import {
  CALL_STATUS_QUERY,
  parseCallStatus,
  parseRecordingStatus,
  RECORDING_STATUS_QUERY,
} from "./call_status.ts";
import { loadConfig } from "./config.ts";
import { createLogger } from "./log.ts";
import { createPostgresBackend } from "./store_postgres.ts";
import { computeSignature, type Param } from "./twilio_signature.ts";
import {
  requireTestDatabase,
  seedCall,
  seedTenant,
  testDatabaseUrl,
  withAdmin,
} from "./testing/test_database.ts";

const AUTH_TOKEN = "twilio-auth-token-for-status-tests";
const PUBLIC_URL = "https://project.supabase.co/functions/v1/twilio-voice";

Deno.test("status callback parsing: Twilio's fields, and nothing malformed", () => {
  const sid = "CA" + "a".repeat(32);
  const parsed = parseCallStatus(
    new Map([["CallSid", sid], ["CallStatus", "completed"], ["CallDuration", "42"], [
      "AnsweredBy",
      "machine_start",
    ]]),
  );
  assert.deepEqual(parsed, {
    ok: true,
    value: { callSid: sid, status: "completed", durationS: 42, answeredBy: "machine_start" },
  });
  for (
    const [name, value] of [["CallStatus", "done"], ["CallDuration", "-1"], ["CallDuration", "9999999"], [
      "AnsweredBy",
      "<script>",
    ], ["CallSid", "CA1"]]
  ) {
    const params = new Map([["CallSid", sid], ["CallStatus", "ringing"], [name, value]]);
    assert.equal(parseCallStatus(params).ok, false, `${name}=${value}`);
  }
  const recording = new Map([
    ["CallSid", sid],
    ["RecordingSid", "RE" + "b".repeat(32)],
    ["RecordingStatus", "completed"],
    ["RecordingChannels", "2"],
    ["RecordingDuration", "7"],
  ]);
  assert.deepEqual(parseRecordingStatus(recording), {
    ok: true,
    value: {
      callSid: sid,
      recordingSid: "RE" + "b".repeat(32),
      status: "completed",
      channels: 2,
      durationS: 7,
    },
  });
  recording.set("RecordingChannels", "3");
  assert.equal(parseRecordingStatus(recording).ok, false);
});

if (requireTestDatabase("status callbacks")) {
  const open = () => {
    const logs: Record<string, unknown>[] = [];
    const config = loadConfig((name) =>
      ({
        TWILIO_AUTH_TOKEN: AUTH_TOKEN,
        OPENAI_API_KEY: "sk-unused",
        PUBLIC_URL,
        TURN_STORE: "postgres",
        SUPABASE_DB_URL: testDatabaseUrl(),
      })[name]
    );
    const store = createPostgresBackend(testDatabaseUrl()!);
    const log = createLogger({ sink: (_level, line) => logs.push(JSON.parse(line)), secrets: [AUTH_TOKEN] });
    const app = createApp({
      config,
      store,
      log,
      openWriter: () => ({ record() {}, recordToolCall() {}, finish() {}, flush: async () => {} }),
    });
    return { app, logs, close: () => store.close() };
  };

  const send = async (
    app: ReturnType<typeof open>["app"],
    query: string,
    params: Param[],
    signWith = AUTH_TOKEN,
  ): Promise<Response> => {
    const url = query ? `${PUBLIC_URL}?${query}` : PUBLIC_URL;
    const response = await app.handle(
      new Request(url.replace("https://project.supabase.co/functions/v1", "http://127.0.0.1:9"), {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          "x-twilio-signature": await computeSignature(signWith, url, params),
        },
        body: new URLSearchParams(params.map(([name, value]) => [name, value])),
      }),
    );
    return response;
  };
  const post = async (...args: Parameters<typeof send>): Promise<number> => {
    const response = await send(...args);
    await response.body?.cancel();
    return response.status;
  };

  const twilioView = async (callSid: string) => {
    const [row] = await withAdmin((sql) =>
      sql`select status, end_reason, ended_at is not null as ended, twilio_status, twilio_duration_s, answered_by
          from public.calls where call_sid = ${callSid}`
    );
    return { ...row };
  };

  Deno.test("status callbacks in any order and with retries end on Twilio's final status", async () => {
    const { app, close } = open();
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin((sql) => seedCall(sql, tenant));
      const event = (status: string, extra: Param[] = []): Param[] => [
        ["AccountSid", "AC" + "0".repeat(32)],
        ["CallSid", callSid],
        ["CallStatus", status],
        ...extra,
      ];
      const completed = event("completed", [["CallDuration", "58"], ["AnsweredBy", "human"]]);
      // Completed first, then the earlier events late, then retries of everything.
      for (
        const params of [completed, event("ringing"), event("in-progress"), completed, event("initiated")]
      ) {
        assert.equal(await post(app, CALL_STATUS_QUERY, params), 204);
      }
      assert.deepEqual(await twilioView(callSid), {
        status: "in_progress",
        end_reason: null,
        ended: false,
        twilio_status: "completed",
        twilio_duration_s: 58,
        answered_by: "human",
      });
    } finally {
      await close();
    }
  });

  Deno.test("a forged or malformed status callback is refused and stores nothing", async () => {
    const { app, logs, close } = open();
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin((sql) => seedCall(sql, tenant));
      const forged: Param[] = [["CallSid", callSid], ["CallStatus", "completed"], ["CallDuration", "1"]];
      assert.equal(await post(app, CALL_STATUS_QUERY, forged, "not-the-auth-token"), 403);
      assert.equal(
        await post(app, CALL_STATUS_QUERY, [["CallSid", callSid], ["CallStatus", "exploded"]]),
        400,
      );
      const recordingForged: Param[] = [
        ["CallSid", callSid],
        ["RecordingSid", "RE" + "c".repeat(32)],
        ["RecordingStatus", "completed"],
      ];
      assert.equal(await post(app, RECORDING_STATUS_QUERY, recordingForged, "forger"), 403);
      assert.equal((await twilioView(callSid)).twilio_status, null);
      const [{ count }] = await withAdmin((sql) =>
        sql`select count(*)::int as count from public.call_recordings where call_sid = ${callSid}`
      );
      assert.equal(count, 0);
      assert.ok(logs.some((line) => line.event === "http.bad_signature"));
    } finally {
      await close();
    }
  });

  Deno.test("a caller hanging up during a handoff ends with a row finalized by the status callback", async () => {
    const { app, close } = open();
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin((sql) => seedCall(sql, tenant));
      // What the bridge writes when it hands the stream off; the caller hangs up before the
      // connect action, so no stream resumes the call.
      await withAdmin((sql) =>
        sql`update public.calls set status = 'handed_off', end_reason = 'handoff: wall clock',
            handed_off_at = now(), stream_seen_at = now() where call_sid = ${callSid}`
      );
      const params: Param[] = [["CallSid", callSid], ["CallStatus", "completed"], ["CallDuration", "140"]];
      assert.equal(await post(app, CALL_STATUS_QUERY, params), 204);
      const view = await twilioView(callSid);
      assert.equal(view.status, "completed");
      assert.equal(view.ended, true);
      assert.equal(view.twilio_duration_s, 140);
      assert.match(String(view.end_reason), /during a handoff/);
    } finally {
      await close();
    }
  });

  Deno.test("a signed recording callback is stored once, with its channels and duration", async () => {
    const { app, close } = open();
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      const callSid = await withAdmin((sql) => seedCall(sql, tenant));
      const recordingSid = "RE" + crypto.randomUUID().replaceAll("-", "");
      const params: Param[] = [
        ["CallSid", callSid],
        ["RecordingSid", recordingSid],
        ["RecordingStatus", "completed"],
        ["RecordingChannels", "2"],
        ["RecordingDuration", "33"],
      ];
      assert.equal(await post(app, RECORDING_STATUS_QUERY, params), 204);
      assert.equal(await post(app, RECORDING_STATUS_QUERY, params), 204, "a retry answers the same");
      const rows = await withAdmin((sql) =>
        sql`select tenant_id, channels, duration_s from public.call_recordings where call_sid = ${callSid}`
      );
      assert.deepEqual(rows.map((row) => ({ ...row })), [{
        tenant_id: tenant.tenantId,
        channels: 2,
        duration_s: 33,
      }]);
    } finally {
      await close();
    }
  });

  Deno.test("an outbound call's tenant is the owner of From, and a machine gets the tenant's voicemail", async () => {
    const { app, close } = open();
    try {
      const tenant = await withAdmin((sql) => seedTenant(sql));
      await withAdmin((sql) =>
        sql`insert into public.tenant_agents (tenant_id, voicemail_action, voicemail_message)
            values (${tenant.tenantId}, 'message', 'Hi, this is Ada''s bakery <calling back>.')`
      );
      const outboundCall = (callSid: string, extra: Param[] = []): Param[] => [
        ["CallSid", callSid],
        ["From", tenant.phoneNumber],
        ["To", "+14155550199"],
        ["Direction", "outbound-api"],
        ...extra,
      ];
      const human = "CA" + crypto.randomUUID().replaceAll("-", "");
      const answered = await (await send(app, "", outboundCall(human, [["AnsweredBy", "human"]]))).text();
      assert.match(answered, /<Connect/);
      assert.match(answered, new RegExp(`name="to_number" value="\\${tenant.phoneNumber}"`));
      const machine = "CA" + crypto.randomUUID().replaceAll("-", "");
      const voicemail =
        await (await send(app, "", outboundCall(machine, [["AnsweredBy", "machine_end_beep"]]))).text();
      assert.match(voicemail, /<Say>Hi, this is Ada&apos;s bakery &lt;calling back&gt;.<\/Say><Hangup\/>/);
      const rows = await withAdmin((sql) =>
        sql`select call_sid, tenant_id, direction from public.calls where call_sid in (${human}, ${machine})`
      );
      assert.deepEqual(
        rows.map((row) => row.tenant_id + row.direction),
        [tenant.tenantId + "outbound", tenant.tenantId + "outbound"],
      );
      // The setting off (the default): a machine is hung up on, nothing said.
      await withAdmin((sql) =>
        sql`update public.tenant_agents set voicemail_action = 'hang_up' where tenant_id = ${tenant.tenantId}`
      );
      const hungUp = "CA" + crypto.randomUUID().replaceAll("-", "");
      const twiml = await (await send(app, "", outboundCall(hungUp, [["AnsweredBy", "machine_start"]])))
        .text();
      assert.doesNotMatch(twiml, /<Say|<Connect/);
      assert.match(twiml, /<Hangup\/>/);
    } finally {
      await close();
    }
  });
}
