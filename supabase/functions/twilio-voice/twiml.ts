// TwiML the function answers with. Every attribute and text is XML-escaped: parameter values come
// from the database and from Twilio's request.
// https://www.twilio.com/docs/voice/twiml/connect  https://www.twilio.com/docs/voice/twiml/stream

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';

// Short, so the caller hears it before Twilio hangs up; said by Twilio, not by the model.
export const NOT_IN_SERVICE_MESSAGE = "Sorry, the number you have called is not in service. Goodbye.";
export const APOLOGY_MESSAGE =
  "Sorry, we are having trouble connecting your call right now. Please try again later. Goodbye.";

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => XML_ENTITIES[char]);
}

const XML_ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
};

function response(body: string): string {
  return `${XML_DECLARATION}<Response>${body}</Response>`;
}

export interface ConnectStream {
  /** Where Twilio asks for the next TwiML once the stream ends (the connect action). */
  actionUrl: string;
  /** The wss:// URL of the Media Stream; Twilio forbids a query string here. */
  streamUrl: string;
  /** Delivered in the stream's `start.customParameters`. */
  parameters: Record<string, string>;
}

export function connectStreamTwiml({ actionUrl, streamUrl, parameters }: ConnectStream): string {
  const params = Object.entries(parameters)
    .map(([name, value]) => `<Parameter name="${escapeXml(name)}" value="${escapeXml(value)}"/>`)
    .join("");
  return response(
    `<Connect action="${escapeXml(actionUrl)}" method="POST"><Stream url="${
      escapeXml(streamUrl)
    }">${params}</Stream></Connect>`,
  );
}

/** `twiml` that first starts a dual-channel recording of the whole call (caller and agent on
 * their own channels) with its status callback, then goes on as before: <Start><Recording> does
 * not block the verbs after it. https://www.twilio.com/docs/voice/twiml/recording */
export function startingRecording(twiml: string, statusCallbackUrl: string): string {
  const start = `<Start><Recording channels="dual" recordingStatusCallback="${
    escapeXml(statusCallbackUrl)
  }" recordingStatusCallbackMethod="POST" recordingStatusCallbackEvent="completed absent"/></Start>`;
  return twiml.replace("<Response>", `<Response>${start}`);
}

function sayThenHangUp(message: string): string {
  return response(`<Say>${escapeXml(message)}</Say><Hangup/>`);
}

/** An outbound call answered by a machine: the tenant's voicemail message, then a hang-up. */
export function voicemailTwiml(message: string): string {
  return sayThenHangUp(message);
}

export function notInServiceTwiml(): string {
  return sayThenHangUp(NOT_IN_SERVICE_MESSAGE);
}

export function apologyTwiml(): string {
  return sayThenHangUp(APOLOGY_MESSAGE);
}

/** The transfer: dial `number`, showing `callerId` (the number the caller called); Twilio asks
 * `actionUrl` how the dial ended. https://www.twilio.com/docs/voice/twiml/dial */
export function dialTwiml(
  { actionUrl, callerId, number }: { actionUrl: string; callerId: string; number: string },
): string {
  return response(
    `<Dial action="${escapeXml(actionUrl)}" method="POST" callerId="${escapeXml(callerId)}"><Number>${
      escapeXml(number)
    }</Number></Dial>`,
  );
}

export function hangUpTwiml(): string {
  return response("<Hangup/>");
}

export function twimlResponse(twiml: string): Response {
  return new Response(twiml, { status: 200, headers: { "content-type": "text/xml; charset=utf-8" } });
}
