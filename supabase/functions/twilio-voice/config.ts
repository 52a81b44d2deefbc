// The function's settings, read once from the environment. Every problem is reported at once, by
// variable name, never by value: a misconfigured deploy should need one fix, not five redeploys.

export const FUNCTION_PATH = "/functions/v1/twilio-voice";
export const DEFAULT_REALTIME_URL = "wss://api.openai.com/v1/realtime";
// Announced to retire 2027-01-20 (successor gpt-realtime-2.1): hence overridable per deploy and per tenant.
export const DEFAULT_REALTIME_MODEL = "gpt-realtime";
// Supabase's paid-plan wall clock per worker; on the free plan set WALL_CLOCK_LIMIT_S=150. Calls
// are handed off to a fresh worker shortly before it (handoff.ts).
// https://supabase.com/docs/guides/functions/limits
export const DEFAULT_WALL_CLOCK_LIMIT_S = 400;
export const DEFAULT_PORT = 8000;
export const DEFAULT_TWILIO_API_URL = "https://api.twilio.com";
// Plain Deno only: all interfaces, as a container needs; `supactl dev` sets HOST=127.0.0.1.
export const DEFAULT_HOST = "0.0.0.0";

// A bearer token guessable by brute force over the internet protects nothing.
const MIN_METRICS_TOKEN_CHARS = 24;

export type TurnStoreKind = "rest" | "postgres";

export interface Config {
  twilioAuthToken: string;
  /** The account's SID, for the dial endpoint (dial_api.ts); absent: that endpoint answers 503. */
  twilioAccountSid: string | null;
  /** Twilio's REST API base (TWILIO_API_URL, as supactl reads it): a contract server in tests. */
  twilioApiUrl: string;
  /** The https URL Twilio posts to (webhook and connect action); signatures are computed over it. */
  publicUrl: string;
  /** The same URL as ws:// or wss://, used as <Stream url> and to verify the upgrade's signature. */
  streamUrl: string;
  supabaseUrl: string | null;
  supabaseServiceRoleKey: string | null;
  openaiApiKey: string;
  realtimeUrl: string;
  realtimeModel: string;
  turnStore: TurnStoreKind;
  supabaseDbUrl: string | null;
  wallClockLimitS: number;
  /** Bearer token /metrics requires (ops_endpoints.ts); null: /metrics only off Edge. */
  metricsToken: string | null;
  /** HTTP tools may call loopback/private addresses: only for local development (supactl dev). */
  toolUrlsAllowPrivate: boolean;
  port: number;
  host: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`twilio-voice is misconfigured: ${problems.join("; ")}`);
    this.name = "ConfigError";
  }
}

export type Env = (name: string) => string | undefined;

export function loadConfig(env: Env = (name) => Deno.env.get(name)): Config {
  const problems: string[] = [];
  const read = (name: string): string | null => {
    const value = env(name)?.trim();
    return value ? value : null;
  };
  const required = (name: string, hint: string): string => {
    const value = read(name);
    if (value === null) problems.push(`${name} is not set (${hint})`);
    return value ?? "";
  };

  const twilioAuthToken = required(
    "TWILIO_AUTH_TOKEN",
    "the Auth Token of the Twilio account that owns the numbers",
  );
  const twilioAccountSid = read("TWILIO_ACCOUNT_SID");
  if (twilioAccountSid !== null && !/^AC[0-9a-f]{32}$/i.test(twilioAccountSid)) {
    problems.push("TWILIO_ACCOUNT_SID must be the account's SID (AC and 32 hex digits)");
  }
  const twilioApiUrl = (read("TWILIO_API_URL") ?? DEFAULT_TWILIO_API_URL).replace(/\/+$/, "");
  if (!/^https?:\/\/[^/?#]+$/i.test(twilioApiUrl)) problems.push("TWILIO_API_URL must be an http(s) origin");
  const openaiApiKey = required("OPENAI_API_KEY", "an OpenAI API key with Realtime access");
  const supabaseUrl = read("SUPABASE_URL");
  const supabaseServiceRoleKey = read("SUPABASE_SERVICE_ROLE_KEY");
  const supabaseDbUrl = read("SUPABASE_DB_URL");

  const publicUrl = parsePublicUrl(read("PUBLIC_URL"), supabaseUrl, problems);
  const realtimeUrl = read("OPENAI_REALTIME_URL") ?? DEFAULT_REALTIME_URL;
  if (!/^wss?:\/\/[^/?#]+/i.test(realtimeUrl)) {
    problems.push("OPENAI_REALTIME_URL must be a ws:// or wss:// URL");
  }

  const turnStoreName = read("TURN_STORE") ?? "rest";
  let turnStore: TurnStoreKind = "rest";
  if (turnStoreName === "rest" || turnStoreName === "postgres") {
    turnStore = turnStoreName;
  } else {
    problems.push(`TURN_STORE must be "rest" or "postgres", not ${JSON.stringify(turnStoreName)}`);
  }
  if (turnStore === "rest") {
    if (!supabaseUrl) problems.push("SUPABASE_URL is not set (needed by TURN_STORE=rest)");
    if (!supabaseServiceRoleKey) {
      problems.push("SUPABASE_SERVICE_ROLE_KEY is not set (needed by TURN_STORE=rest)");
    }
  } else if (!supabaseDbUrl) {
    problems.push("SUPABASE_DB_URL is not set (needed by TURN_STORE=postgres)");
  }

  // 0: no wall clock (a self-hosted fleet), so no handoff is scheduled; only a SIGTERM drain moves calls.
  const wallClockLimitS = wholeNumber(read("WALL_CLOCK_LIMIT_S"), DEFAULT_WALL_CLOCK_LIMIT_S);
  if (wallClockLimitS === null) {
    problems.push(
      "WALL_CLOCK_LIMIT_S must be a whole number of seconds (0: no wall clock, only drains hand off)",
    );
  }
  const metricsToken = read("METRICS_TOKEN");
  if (metricsToken !== null && metricsToken.length < MIN_METRICS_TOKEN_CHARS) {
    problems.push(`METRICS_TOKEN must be at least ${MIN_METRICS_TOKEN_CHARS} characters (a random secret)`);
  }
  const port = positiveInteger(read("PORT"), DEFAULT_PORT);
  if (port === null || port > 65535) problems.push("PORT must be a TCP port number (1-65535)");

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    twilioAuthToken,
    twilioAccountSid,
    twilioApiUrl,
    publicUrl: publicUrl!,
    streamUrl: publicUrl!.replace(/^http/i, "ws"),
    supabaseUrl,
    supabaseServiceRoleKey,
    openaiApiKey,
    realtimeUrl,
    realtimeModel: read("OPENAI_REALTIME_MODEL") ?? DEFAULT_REALTIME_MODEL,
    turnStore,
    supabaseDbUrl,
    wallClockLimitS: wallClockLimitS!,
    toolUrlsAllowPrivate: read("TOOL_URLS_ALLOW_PRIVATE") === "true",
    metricsToken,
    port: port!,
    host: read("HOST") ?? DEFAULT_HOST,
  };
}

function parsePublicUrl(
  publicUrl: string | null,
  supabaseUrl: string | null,
  problems: string[],
): string | null {
  const base = publicUrl ?? (supabaseUrl ? supabaseUrl.replace(/\/+$/, "") + FUNCTION_PATH : null);
  if (base === null) {
    problems.push("PUBLIC_URL is not set and there is no SUPABASE_URL to derive it from");
    return null;
  }
  const name = publicUrl ? "PUBLIC_URL" : "SUPABASE_URL";
  // Twilio signs the URL exactly as configured, so a query or fragment here could never verify.
  if (!/^https?:\/\/[^/?#]+[^?#]*$/i.test(base)) {
    problems.push(`${name} must be an http(s) URL without query or fragment`);
    return null;
  }
  return base.replace(/\/+$/, "");
}

function wholeNumber(value: string | null, fallback: number): number | null {
  if (value === null) return fallback;
  if (!/^[0-9]+$/.test(value)) return null;
  return Number(value);
}

function positiveInteger(value: string | null, fallback: number): number | null {
  const parsed = wholeNumber(value, fallback);
  return parsed !== null && parsed > 0 ? parsed : null;
}

/** The Realtime WebSocket URL for a model, keeping any query the operator configured. */
export function realtimeModelUrl(realtimeUrl: string, model: string): string {
  const separator = realtimeUrl.includes("?") ? "&" : "?";
  return `${realtimeUrl}${separator}model=${encodeURIComponent(model)}`;
}
