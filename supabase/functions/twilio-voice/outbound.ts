// Outbound calls (placed by `supactl dial` through Twilio's Calls API): the voice webhook of such
// a call has Direction outbound-api (or outbound-dial), From is the tenant's own number and To the
// callee; with machine detection on, AnsweredBy says who picked up.
// https://www.twilio.com/docs/voice/twiml#request-parameters
// https://www.twilio.com/docs/voice/answering-machine-detection

import type { OutboundSettings } from "./store.ts";
import { hangUpTwiml, voicemailTwiml } from "./twiml.ts";

export function isOutbound(params: Map<string, string>): boolean {
  return (params.get("Direction") ?? "").startsWith("outbound");
}

/** The number whose tenant answers the call: To on inbound legs, From (the tenant's) on outbound. */
export function tenantNumber(params: Map<string, string>): string {
  return (isOutbound(params) ? params.get("From") : params.get("To")) ?? "";
}

/** machine_start, machine_end_beep, machine_end_silence, machine_end_other, and fax: no person. */
export function answeredByMachine(params: Map<string, string>): boolean {
  const answeredBy = params.get("AnsweredBy") ?? "";
  return answeredBy.startsWith("machine_") || answeredBy === "fax";
}

/** What an answering machine gets: the tenant's voicemail message then a hang-up, or a hang-up. */
export function machineTwiml(settings: OutboundSettings): string {
  const message = settings.voicemailMessage.trim();
  return settings.voicemailAction === "message" && message ? voicemailTwiml(message) : hangUpTwiml();
}
