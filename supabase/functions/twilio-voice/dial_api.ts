// The programmatic dial: a tenant's own backend places an outbound call through the function,
//   POST <function>?action=dial   Authorization: Bearer <service-role key>
//   {"to": "+E164", "tenant": "<tenant id>", "from": "+E164", "context": {...}, "machine_detection": true}
// checked by the same rules as `supactl dial` (supactl/cloud/outbound.py) before Twilio is asked to
// ring anyone. The rules are written down once, in testing/dial_cases.json, which this file's test
// and tests/test_dial_cases.py both run, so the two implementations cannot drift apart.

import { MAX_CONTEXT_BYTES } from "./outbound.ts";
import { errorMessage, type Logger } from "./log.ts";
import { readCappedText } from "./request_body.ts";
import type { StoreBackend } from "./store.ts";

/** The query of the dial endpoint at the function's own URL (app.ts routes on it). */
export const DIAL_QUERY = "action=dial";
/** Twilio's Calls API path version (https://www.twilio.com/docs/voice/api/call-resource). */
export const TWILIO_API_VERSION = "2010-04-01";
/** Every event Twilio offers, so the call row gets Twilio's whole view of the call. */
export const STATUS_CALLBACK_EVENTS = ["initiated", "ringing", "answered", "completed"] as const;
// A dial request is a few hundred bytes plus the context (at most MAX_CONTEXT_BYTES compact;
// pretty-printed JSON and escapes make it bigger): anything past this is not a dial.
const MAX_DIAL_BODY_BYTES = 16 * 1024;
const BODY_TIMEOUT_MS = 10_000;
// Twilio answers a call creation in well under a second; a hung API must not hold the worker.
const TWILIO_TIMEOUT_MS = 15_000;
const E164 = /^\+[1-9][0-9]{1,14}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DIAL_FIELDS = new Set(["to", "tenant", "from", "context", "machine_detection"]);

export interface DialRequest {
  to: string;
  tenant: string;
  /** null: the tenant's first number (phone_number order), as supactl dial defaults. */
  from: string | null;
  context: Record<string, unknown> | null;
  machineDetection: boolean;
}

export type DialCheck = { ok: true; value: DialRequest } | { ok: false; problem: string };

/** The dial's JSON body, checked field by field; the problem names the field and the fix. */
export function parseDialRequest(body: unknown): DialCheck {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return { ok: false, problem: "the body must be a JSON object" };
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((name) => !DIAL_FIELDS.has(name));
  if (unknown.length > 0) {
    return {
      ok: false,
      problem: `unknown fields: ${unknown.sort().join(", ")} (known: ${[...DIAL_FIELDS].join(", ")})`,
    };
  }
  for (const name of ["to", "from"]) {
    const value = fields[name];
    if (name === "from" && (value === undefined || value === null)) continue;
    if (typeof value !== "string" || !E164.test(value)) {
      return { ok: false, problem: `${name} must be an E.164 number, e.g. +14155550123` };
    }
  }
  if (typeof fields.tenant !== "string" || !UUID.test(fields.tenant)) {
    return { ok: false, problem: "tenant must be the tenant's id (a UUID: supactl tenants list)" };
  }
  const context = fields.context ?? null;
  if (context !== null) {
    if (typeof context !== "object" || Array.isArray(context)) {
      return { ok: false, problem: "context must be a JSON object" };
    }
    if (new TextEncoder().encode(compactJson(context)).length > MAX_CONTEXT_BYTES) {
      return { ok: false, problem: `context is larger than ${MAX_CONTEXT_BYTES} bytes as compact JSON` };
    }
  }
  const machineDetection = fields.machine_detection ?? false;
  if (typeof machineDetection !== "boolean") {
    return { ok: false, problem: "machine_detection must be true or false" };
  }
  return {
    ok: true,
    value: {
      to: fields.to as string,
      from: (fields.from as string | undefined) ?? null,
      tenant: fields.tenant,
      context: context as Record<string, unknown> | null,
      machineDetection,
    },
  };
}

/** JSON with sorted keys and no spaces: the bytes `supactl dial` puts in the URL for the same
 * context (Python's json.dumps(separators=(",", ":"), sort_keys=True, ensure_ascii=False)). */
export function compactJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(compactJson).join(",")}]`;
  const entries = Object.keys(value).sort().map((key) =>
    `${JSON.stringify(key)}:${compactJson((value as Record<string, unknown>)[key])}`
  );
  return `{${entries.join(",")}}`;
}

function base64Url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The Calls API form (the same as supactl/cloud/outbound.py dial_form): Url = the function's
 * webhook with the context in its query (covered by Twilio's signature), StatusCallback for every
 * event, MachineDetection and dual-channel recording when asked. */
export function dialForm(options: {
  to: string;
  from: string;
  functionUrl: string;
  context: Record<string, unknown> | null;
  machineDetection: boolean;
  record: boolean;
}): [string, string][] {
  const { functionUrl } = options;
  let url = functionUrl;
  if (options.context !== null) {
    url += "?" + new URLSearchParams({ context: base64Url(compactJson(options.context)) });
  }
  const form: [string, string][] = [
    ["To", options.to],
    ["From", options.from],
    ["Url", url],
    ["Method", "POST"],
    ["StatusCallback", `${functionUrl}?event=call-status`],
    ["StatusCallbackMethod", "POST"],
    ...STATUS_CALLBACK_EVENTS.map((event): [string, string] => ["StatusCallbackEvent", event]),
  ];
  if (options.machineDetection) form.push(["MachineDetection", "Enable"]);
  if (options.record) {
    form.push(
      ["Record", "true"],
      ["RecordingChannels", "dual"],
      ["RecordingStatusCallback", `${functionUrl}?event=recording-status`],
      ["RecordingStatusCallbackMethod", "POST"],
    );
  }
  return form;
}

/** Equal strings, compared in time that does not depend on where they differ (both hashed first,
 * so not on their lengths either). */
export async function constantTimeEqual(given: string, expected: string): Promise<boolean> {
  const encoder = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(given)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  const left = new Uint8Array(a);
  const right = new Uint8Array(b);
  let difference = 0;
  for (let i = 0; i < left.length; i++) difference |= left[i] ^ right[i];
  return difference === 0;
}

export interface DialDeps {
  publicUrl: string;
  serviceRoleKey: string | null;
  twilioAccountSid: string | null;
  twilioAuthToken: string;
  twilioApiUrl: string;
  store: Pick<StoreBackend, "findNumberOwner" | "outboundSettings" | "tenantNumbers">;
  log: Logger;
  fetch?: typeof fetch;
}

export function createDialEndpoint(deps: DialDeps): (request: Request) => Promise<Response> {
  const fetcher = deps.fetch ?? fetch;
  return async (request) => {
    if (deps.serviceRoleKey === null || deps.twilioAccountSid === null) {
      await request.body?.cancel().catch(() => {});
      return problem(503, "dialing is not configured: set SUPABASE_SERVICE_ROLE_KEY and TWILIO_ACCOUNT_SID");
    }
    // Checked before a byte of the body is read: an unauthenticated caller costs nothing.
    const authorization = request.headers.get("authorization") ?? "";
    const bearer = /^Bearer (.+)$/i.exec(authorization)?.[1]?.trim() ?? "";
    if (!bearer || !await constantTimeEqual(bearer, deps.serviceRoleKey)) {
      await request.body?.cancel().catch(() => {});
      deps.log.warn("dial.unauthorized", { bearer: bearer !== "" });
      return problem(401, "Authorization: Bearer <service-role key> is required");
    }
    const body = await readCappedText(request, MAX_DIAL_BODY_BYTES, BODY_TIMEOUT_MS);
    if (body.kind === "too_large") {
      return problem(413, `the body is larger than ${MAX_DIAL_BODY_BYTES} bytes`);
    }
    if (body.kind === "timeout") return problem(408, "request body too slow");
    let json: unknown;
    try {
      json = JSON.parse(body.text);
    } catch {
      return problem(400, "the body is not JSON");
    }
    const checked = parseDialRequest(json);
    if (!checked.ok) return problem(400, checked.problem);
    const dial = checked.value;
    try {
      // The function finds an outbound call's tenant by its From: it must be this tenant's.
      let from = dial.from;
      if (from === null) {
        from = (await deps.store.tenantNumbers(dial.tenant))[0] ?? null;
        if (from === null) return problem(422, `tenant ${dial.tenant} has no phone number to call from`);
      } else {
        const owner = await deps.store.findNumberOwner(from);
        if (owner === null || owner.tenantId !== dial.tenant) {
          return problem(422, `${from} is not a number of tenant ${dial.tenant}`);
        }
      }
      const settings = await deps.store.outboundSettings(dial.tenant);
      const form = dialForm({
        to: dial.to,
        from,
        functionUrl: deps.publicUrl,
        context: dial.context,
        machineDetection: dial.machineDetection,
        record: settings.recordCalls,
      });
      const twilio = await fetcher(
        `${deps.twilioApiUrl}/${TWILIO_API_VERSION}/Accounts/${deps.twilioAccountSid}/Calls.json`,
        {
          method: "POST",
          headers: {
            authorization: "Basic " + btoa(`${deps.twilioAccountSid}:${deps.twilioAuthToken}`),
            "content-type": "application/x-www-form-urlencoded",
          },
          body: new URLSearchParams(form).toString(),
          signal: AbortSignal.timeout(TWILIO_TIMEOUT_MS),
        },
      );
      const answer = await twilio.json().catch(() => ({})) as Record<string, unknown>;
      if (!twilio.ok) {
        deps.log.warn("dial.twilio_refused", { status: twilio.status, code: String(answer.code ?? "") });
        return problem(
          502,
          `Twilio refused the call (${answer.code ?? twilio.status}): ${answer.message ?? ""}`,
        );
      }
      deps.log.info("dial.placed", {
        call_sid: String(answer.sid),
        tenant_id: dial.tenant,
        record: settings.recordCalls,
      });
      return Response.json(
        {
          call_sid: String(answer.sid),
          status: answer.status,
          to: dial.to,
          from,
          tenant: dial.tenant,
        },
        { status: 201 },
      );
    } catch (error) {
      deps.log.error("dial.failed", { message: errorMessage(error) });
      return problem(503, "could not place the call; retry");
    }
  };
}

function problem(status: number, message: string): Response {
  return Response.json({ error: message }, { status });
}
