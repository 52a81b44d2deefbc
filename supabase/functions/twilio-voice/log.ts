// One JSON line per event, so Supabase's log explorer (and jq) can filter by call_sid or event.
// Never an audio payload, signature, token or key: fields with such names are dropped, and the
// configured secrets are masked wherever they appear in a value (error messages quote URLs).

export type LogLevel = "info" | "warn" | "error";
export type LogValue = string | number | boolean | null | undefined;
export type LogFields = Record<string, LogValue>;

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger whose every line also carries `fields` (e.g. the call_sid). */
  with(fields: LogFields): Logger;
}

export type LogSink = (level: LogLevel, line: string) => void;

const consoleSink: LogSink = (level, line) => {
  if (level === "error") console.error(line);
  else console.log(line);
};

// Matched on the last word of a field name: `stream_token` is dropped, `output_tokens` is kept.
const FORBIDDEN_FIELD =
  /(^|_)(payload|audio|delta|signature|token|secret|password|authorization|api_?key|key)$/i;
const MAX_VALUE_CHARS = 1000;
const MASK = "[redacted]";

export function createLogger(options: { sink?: LogSink; secrets?: (string | null)[] } = {}): Logger {
  const sink = options.sink ?? consoleSink;
  // Longest first, so a secret that contains another is masked whole.
  const secrets = (options.secrets ?? [])
    .filter((secret): secret is string => typeof secret === "string" && secret.length >= 4)
    .sort((a, b) => b.length - a.length);

  const clean = (value: LogValue): LogValue => {
    if (typeof value !== "string") return value;
    let text = value;
    for (const secret of secrets) {
      if (text.includes(secret)) text = text.split(secret).join(MASK);
    }
    return text.length > MAX_VALUE_CHARS ? text.slice(0, MAX_VALUE_CHARS) + "…" : text;
  };

  const make = (base: LogFields): Logger => {
    const write = (level: LogLevel, event: string, fields?: LogFields) => {
      const record: Record<string, LogValue> = { ts: new Date().toISOString(), level, event };
      for (const source of [base, fields]) {
        if (!source) continue;
        for (const [name, value] of Object.entries(source)) {
          if (value === undefined || FORBIDDEN_FIELD.test(name)) continue;
          record[name] = clean(value);
        }
      }
      sink(level, JSON.stringify(record));
    };
    return {
      info: (event, fields) => write("info", event, fields),
      warn: (event, fields) => write("warn", event, fields),
      error: (event, fields) => write("error", event, fields),
      with: (fields) => make({ ...base, ...fields }),
    };
  };
  return make({});
}

/** The message of anything thrown, without its stack (stacks can quote request data). */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
