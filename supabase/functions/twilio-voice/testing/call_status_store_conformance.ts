// The status and recording callbacks' half of the store conformance suite (registered by
// store_conformance.ts), so both backends write Twilio's view of a call the same way.

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import type { StoreBackend } from "../store.ts";
import { newPhoneNumber, seedCall, seedTenant, withAdmin } from "./test_database.ts";

type BackendTest = (name: string, body: (backend: StoreBackend) => Promise<void>) => void;

const status = (
  callSid: string,
  value: string,
  durationS: number | null = null,
  answeredBy: string | null = null,
) => ({
  callSid,
  status: value,
  durationS,
  answeredBy,
});

export function registerCallStatusStoreConformance(backendTest: BackendTest): void {
  backendTest("status callbacks move the call forward only, whatever their order", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    assertEquals(await backend.recordTwilioStatus(status(callSid, "completed", 31, "human")), true);
    assertEquals(await backend.recordTwilioStatus(status(callSid, "in-progress")), false, "late");
    assertEquals(await backend.recordTwilioStatus(status(callSid, "completed", 31, "human")), false, "retry");
    const [row] = await withAdmin((sql) =>
      sql`select twilio_status, twilio_duration_s, answered_by from public.calls where call_sid = ${callSid}`
    );
    assertEquals({ ...row }, { twilio_status: "completed", twilio_duration_s: 31, answered_by: "human" });
  });

  backendTest("a recording callback is stored under the call's tenant", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    const callSid = await withAdmin((sql) => seedCall(sql, tenant));
    const recordingSid = "RE" + crypto.randomUUID().replaceAll("-", "");
    const update = { callSid, recordingSid, status: "completed", channels: 2, durationS: 12 };
    assertEquals(await backend.recordRecording(update), true);
    assertEquals(await backend.recordRecording(update), false, "retry");
    const [row] = await withAdmin((sql) =>
      sql`select tenant_id, channels, duration_s from public.call_recordings where recording_sid = ${recordingSid}`
    );
    assertEquals({ ...row }, { tenant_id: tenant.tenantId, channels: 2, duration_s: 12 });
  });

  backendTest("a tenant's numbers, in phone_number order; none for a tenant without", async (backend) => {
    const tenant = await withAdmin((sql) => seedTenant(sql));
    // A second random number, never the first (a derived one can collide with it).
    let second = newPhoneNumber();
    while (second === tenant.phoneNumber) second = newPhoneNumber();
    await withAdmin((sql) =>
      sql`insert into public.tenant_phone_numbers (phone_number, tenant_id) values (${second}, ${tenant.tenantId})`
    );
    assertEquals(await backend.tenantNumbers(tenant.tenantId), [second, tenant.phoneNumber].sort());
    assertEquals(await backend.tenantNumbers(crypto.randomUUID()), []);
  });

  backendTest("a tenant's outbound settings, with defaults when it has no agent row", async (backend) => {
    const bare = await withAdmin((sql) => seedTenant(sql));
    assertEquals(await backend.outboundSettings(bare.tenantId), {
      outboundGreeting: "",
      voicemailAction: "hang_up",
      voicemailMessage: "",
      recordCalls: false,
    });
    const set = await withAdmin((sql) => seedTenant(sql));
    await withAdmin((sql) =>
      sql`insert into public.tenant_agents (tenant_id, outbound_greeting, voicemail_action, voicemail_message, record_calls)
          values (${set.tenantId}, 'Hello from Ada', 'message', 'Please call us back', true)`
    );
    assertEquals(await backend.outboundSettings(set.tenantId), {
      outboundGreeting: "Hello from Ada",
      voicemailAction: "message",
      voicemailMessage: "Please call us back",
      recordCalls: true,
    });
  });
}
