// PostgREST's table requests translated into SQL for the contract server, for the shapes
// supabase-js sends: GET with select/filters/order/limit, POST (insert and upsert via Prefer
// resolution and on_conflict) and PATCH with filters. Anything else is refused, PostgREST-style,
// rather than guessed at: a fake that accepts what the real service refuses proves nothing.
//
// Reference: https://docs.postgrest.org/en/v12/references/api/tables_views.html and
// .../references/errors.html (codes PGRST100, PGRST102, PGRST204, PGRST205).

export interface TableSchema {
  name: string;
  /** Column name -> SQL type as format_type() spells it. */
  columns: Map<string, string>;
  primaryKey: string[];
}

export type SchemaCache = Map<string, TableSchema>;

export interface PostgrestErrorBody {
  code: string | null;
  message: string;
  details: string | null;
  hint: string | null;
}

export class PostgrestRequestError extends Error {
  constructor(readonly status: number, readonly body: PostgrestErrorBody) {
    super(body.message);
  }
}

function refuse(status: number, code: string, message: string, details: string | null = null) {
  return new PostgrestRequestError(status, { code, message, details, hint: null });
}

export interface Preferences {
  return?: "minimal" | "representation" | "headers-only";
  resolution?: "merge-duplicates" | "ignore-duplicates";
  missing?: "default" | "null";
  handling?: "strict" | "lenient";
  /** Every preference as sent, to echo the applied ones in Preference-Applied. */
  applied: string[];
}

const KNOWN_PREFERENCES: Record<string, readonly string[]> = {
  return: ["minimal", "representation", "headers-only"],
  resolution: ["merge-duplicates", "ignore-duplicates"],
  missing: ["default", "null"],
  handling: ["strict", "lenient"],
  count: ["exact", "planned", "estimated"],
  tx: ["commit", "rollback"],
};

/** Prefer may come as several headers or one comma-separated list (supabase-js appends). */
export function parsePreferences(headerValue: string | null): Preferences {
  const preferences: Preferences = { applied: [] };
  const unknown: string[] = [];
  for (const token of (headerValue ?? "").split(",").map((part) => part.trim()).filter(Boolean)) {
    const [name, value] = token.split("=", 2);
    if (!KNOWN_PREFERENCES[name]?.includes(value)) {
      unknown.push(token);
      continue;
    }
    if (name === "return" || name === "resolution" || name === "missing" || name === "handling") {
      (preferences as unknown as Record<string, string>)[name] = value;
    }
    preferences.applied.push(token);
  }
  // PostgREST ignores preferences it does not know unless the client asks for strict handling.
  if (unknown.length > 0 && preferences.handling === "strict") {
    throw refuse(
      400,
      "PGRST122",
      "Invalid preferences given with handling=strict",
      `Invalid preferences: ${unknown.join(", ")}`,
    );
  }
  return preferences;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export interface SqlStatement {
  text: string;
  params: (string | null)[];
  /** True when the statement yields one row with a `body` column holding a JSON array. */
  returnsBody: boolean;
}

class Params {
  readonly values: (string | null)[] = [];
  /** A text placeholder: with `$n::jsonb` Postgres would type the parameter jsonb and the driver
   * would encode the already-encoded text again; PostgREST too sends values as text. */
  add(value: string | null): string {
    this.values.push(value);
    return `$${this.values.length}::text`;
  }
}

export function findTable(schema: SchemaCache, name: string): TableSchema {
  const table = schema.get(name);
  if (!table) {
    throw refuse(404, "PGRST205", `Could not find the table 'public.${name}' in the schema cache`);
  }
  return table;
}

function columnType(table: TableSchema, column: string): string {
  const type = table.columns.get(column);
  // Postgres itself reports a missing column as PostgREST forwards it: 42703, HTTP 400.
  if (!type) throw refuse(400, "42703", `column ${table.name}.${column} does not exist`);
  return type;
}

function isJsonType(type: string): boolean {
  return type === "json" || type === "jsonb";
}

function encodeValue(value: unknown, type: string): string | null {
  if (value === null || value === undefined) return null;
  if (isJsonType(type)) return JSON.stringify(value);
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

function selectList(table: TableSchema, select: string | null): string {
  if (select === null || select.trim() === "" || select.trim() === "*") return "*";
  if (/[()!]/.test(select)) {
    throw refuse(400, "PGRST100", `the contract server does not implement resource embedding: ${select}`);
  }
  return select.split(",").map((item) => {
    const column = item.trim();
    columnType(table, column);
    return quoteIdent(column);
  }).join(", ");
}

const COMPARISONS: Record<string, string> = {
  eq: "=",
  neq: "<>",
  gt: ">",
  gte: ">=",
  lt: "<",
  lte: "<=",
};

function filterCondition(table: TableSchema, column: string, raw: string, params: Params): string {
  const negated = raw.startsWith("not.");
  const expression = negated ? raw.slice(4) : raw;
  const dot = expression.indexOf(".");
  const operator = dot < 0 ? "" : expression.slice(0, dot);
  const operand = dot < 0 ? "" : expression.slice(dot + 1);
  const type = columnType(table, column);
  const target = `${quoteIdent(table.name)}.${quoteIdent(column)}`;
  let condition: string;
  if (operator in COMPARISONS) {
    condition = `${target} ${COMPARISONS[operator]} ${params.add(operand)}::${type}`;
  } else if (operator === "is" && ["null", "true", "false", "unknown"].includes(operand)) {
    condition = `${target} is ${operand}`;
  } else if (operator === "like" || operator === "ilike") {
    condition = `${target}::text ${operator} ${params.add(operand.replaceAll("*", "%"))}`;
  } else if (operator === "in" && /^\(.*\)$/.test(operand)) {
    const items = operand.slice(1, -1).split(",").map((item) => item.trim().replace(/^"(.*)"$/, "$1"));
    condition = `${target} in (${items.map((item) => `${params.add(item)}::${type}`).join(", ")})`;
  } else {
    throw refuse(
      400,
      "PGRST100",
      `"failed to parse filter (${raw})" (line 1, column ${raw.length + 1})`,
      `unexpected "${operator}" expecting an operator such as eq, neq, gt, is, in`,
    );
  }
  return negated ? `not (${condition})` : condition;
}

const RESERVED_PARAMS = new Set(["select", "order", "limit", "offset", "columns", "on_conflict"]);

function whereClause(table: TableSchema, query: URLSearchParams, params: Params): string {
  const conditions: string[] = [];
  for (const [name, value] of query) {
    if (RESERVED_PARAMS.has(name)) continue;
    conditions.push(filterCondition(table, name, value, params));
  }
  return conditions.length > 0 ? ` where ${conditions.join(" and ")}` : "";
}

function orderClause(table: TableSchema, order: string | null): string {
  if (!order) return "";
  const terms = order.split(",").map((term) => {
    const match = /^([a-z_][a-z0-9_]*)(\.(asc|desc))?(\.(nullsfirst|nullslast))?$/.exec(term.trim());
    if (!match) {
      throw refuse(
        400,
        "PGRST100",
        `"failed to parse order (${order})" (line 1, column 1)`,
        `unexpected "${term}"`,
      );
    }
    columnType(table, match[1]);
    const nulls = match[5] ? ` nulls ${match[5].slice(5)}` : "";
    return `${quoteIdent(match[1])} ${match[3] ?? "asc"}${nulls}`;
  });
  return ` order by ${terms.join(", ")}`;
}

function nonNegativeInteger(name: string, value: string | null): number | null {
  if (value === null) return null;
  if (!/^[0-9]+$/.test(value)) {
    throw refuse(400, "PGRST100", `"failed to parse ${name} (${value})" (line 1, column 1)`);
  }
  return Number(value);
}

export function selectStatement(table: TableSchema, query: URLSearchParams): SqlStatement {
  const params = new Params();
  const where = whereClause(table, query, params);
  const limit = nonNegativeInteger("limit", query.get("limit"));
  const offset = nonNegativeInteger("offset", query.get("offset"));
  const text = `select coalesce(json_agg(r), '[]'::json) as body from (` +
    `select ${selectList(table, query.get("select"))} from public.${quoteIdent(table.name)}${where}` +
    `${orderClause(table, query.get("order"))}` +
    `${limit === null ? "" : ` limit ${limit}`}${offset === null ? "" : ` offset ${offset}`}) r`;
  return { text, params: params.values, returnsBody: true };
}

function missingColumn(table: TableSchema, column: string): PostgrestRequestError {
  return refuse(
    400,
    "PGRST204",
    `Could not find the '${column}' column of '${table.name}' in the schema cache`,
  );
}

function parseColumnsParam(table: TableSchema, columns: string): string[] {
  return columns.split(",").map((item) => {
    const column = item.trim().replace(/^"(.*)"$/, "$1");
    if (!table.columns.has(column)) throw missingColumn(table, column);
    return column;
  });
}

function bodyObjects(body: unknown, allowArray: boolean): Record<string, unknown>[] {
  const objects = Array.isArray(body) && allowArray ? body : [body];
  for (const object of objects) {
    if (object === null || typeof object !== "object" || Array.isArray(object)) {
      throw refuse(400, "PGRST102", "Empty or invalid json");
    }
  }
  return objects as Record<string, unknown>[];
}

// PostgREST drops body keys that are not in ?columns=; the contract is stricter and refuses any
// key that is not a real column, so a typo in a backend fails here instead of losing data.
function checkBodyKeys(table: TableSchema, objects: Record<string, unknown>[]): void {
  for (const object of objects) {
    for (const key of Object.keys(object)) {
      if (!table.columns.has(key)) throw missingColumn(table, key);
    }
  }
}

function wrapReturning(statement: string, table: TableSchema, query: URLSearchParams, prefs: Preferences) {
  if (prefs.return !== "representation") return { text: statement, returnsBody: false };
  return {
    text: `with r as (${statement} returning ${selectList(table, query.get("select"))}) ` +
      `select coalesce(json_agg(r), '[]'::json) as body from r`,
    returnsBody: true,
  };
}

export function insertStatement(
  table: TableSchema,
  query: URLSearchParams,
  prefs: Preferences,
  body: unknown,
): SqlStatement {
  const objects = bodyObjects(body, true);
  if (objects.length === 0) return { text: "select '[]'::json as body", params: [], returnsBody: true };
  checkBodyKeys(table, objects);
  const columnsParam = query.get("columns");
  let columns: string[];
  if (columnsParam !== null) {
    columns = parseColumnsParam(table, columnsParam);
  } else {
    columns = Object.keys(objects[0]);
    const expected = JSON.stringify([...columns].sort());
    if (objects.some((object) => JSON.stringify(Object.keys(object).sort()) !== expected)) {
      throw refuse(400, "PGRST102", "All object keys must match");
    }
  }
  const params = new Params();
  const rows = objects.map((object) =>
    "(" + columns.map((column) => {
      if (!(column in object) && prefs.missing === "default") return "default";
      const type = columnType(table, column);
      return `${params.add(encodeValue(object[column], type))}::${type}`;
    }).join(", ") + ")"
  );
  let statement = `insert into public.${quoteIdent(table.name)} as ${quoteIdent(table.name)} ` +
    `(${columns.map(quoteIdent).join(", ")}) values ${rows.join(", ")}`;
  if (prefs.resolution) {
    const onConflict = query.get("on_conflict");
    // Without on_conflict PostgREST resolves on the primary key.
    const target = onConflict !== null
      ? onConflict.split(",").map((column) => column.trim())
      : table.primaryKey;
    // An unknown column or one with no unique constraint is left for Postgres to refuse (42703,
    // 42P10), exactly as PostgREST forwards it.
    statement += ` on conflict (${target.map(quoteIdent).join(", ")})`;
    statement += prefs.resolution === "ignore-duplicates"
      ? " do nothing"
      : ` do update set ${columns.map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`).join(", ")}`;
  }
  return { ...wrapReturning(statement, table, query, prefs), params: params.values };
}

export function updateStatement(
  table: TableSchema,
  query: URLSearchParams,
  prefs: Preferences,
  body: unknown,
): SqlStatement {
  const [object] = bodyObjects(body, false);
  checkBodyKeys(table, [object]);
  const params = new Params();
  const assignments = Object.entries(object).map(([column, value]) => {
    const type = columnType(table, column);
    return `${quoteIdent(column)} = ${params.add(encodeValue(value, type))}::${type}`;
  });
  if (assignments.length === 0) return { text: "select '[]'::json as body", params: [], returnsBody: true };
  const statement = `update public.${quoteIdent(table.name)} set ${assignments.join(", ")}` +
    whereClause(table, query, params);
  return { ...wrapReturning(statement, table, query, prefs), params: params.values };
}

/** A function of the public schema as PostgREST's schema cache knows it, for POST /rest/v1/rpc/<name>. */
export interface FunctionSchema {
  name: string;
  /** Argument names in order, with their types. */
  args: { name: string; type: string }[];
  /** How many of the trailing arguments have defaults. */
  defaults: number;
  returnsSet: boolean;
  /** The table whose rows it returns (`returns setof public.calls`), or null for a scalar. */
  rowTable: string | null;
}

export type FunctionCache = Map<string, FunctionSchema>;

/** The function a JSON body calls: PostgREST picks it by name and the body's keys, every argument
 * without a default given, no unknown key (else 404 PGRST202). */
export function findFunction(functions: FunctionCache, name: string, body: unknown): FunctionSchema {
  const fn = functions.get(name);
  const [object] = bodyObjects(body ?? {}, false);
  const keys = Object.keys(object);
  const required = fn?.args.slice(0, fn.args.length - fn.defaults).map((arg) => arg.name) ?? [];
  if (
    !fn || keys.some((key) => !fn.args.some((arg) => arg.name === key)) ||
    required.some((arg) => !keys.includes(arg))
  ) {
    throw refuse(
      404,
      "PGRST202",
      `Could not find the function public.${name}(${keys.join(", ")}) in the schema cache`,
    );
  }
  return fn;
}

/** The call of `fn` with the body's named arguments: a JSON array of rows (`select` applies) for
 * a set-returning function, the bare value otherwise, as PostgREST answers an RPC. */
export function rpcStatement(
  fn: FunctionSchema,
  schema: SchemaCache,
  query: URLSearchParams,
  body: unknown,
): SqlStatement {
  const [object] = bodyObjects(body ?? {}, false);
  const params = new Params();
  const args = fn.args.filter((arg) => arg.name in object).map((arg) =>
    `${quoteIdent(arg.name)} => ${params.add(encodeValue(object[arg.name], arg.type))}::${arg.type}`
  );
  const call = `public.${quoteIdent(fn.name)}(${args.join(", ")})`;
  if (fn.rowTable === null) {
    return {
      text: `select to_json(${fn.returnsSet ? `array(select ${call})` : call}) as body`,
      params: params.values,
      returnsBody: true,
    };
  }
  const select = selectList(findTable(schema, fn.rowTable), query.get("select"));
  const text = `select ${fn.returnsSet ? "coalesce(json_agg(r), '[]'::json)" : "to_json(r)"} as body ` +
    `from (select ${select} from ${call} f) r`;
  return { text, params: params.values, returnsBody: true };
}
