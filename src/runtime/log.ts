export type LogLevel = "debug" | "info" | "warn" | "error";
const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
export const LOG_LEVELS = Object.keys(rank) as LogLevel[];

type Fields = Record<string, unknown>;

/** Structured JSON logs, one object per line, bound fields carried into every line. */
export class Logger {
  readonly level: LogLevel;
  private readonly fields: Fields;
  private readonly write: (line: string) => void;

  constructor(
    level: LogLevel = "info",
    fields: Fields = {},
    write: (line: string) => void = (l) => process.stderr.write(l + "\n"),
  ) {
    this.level = level;
    this.fields = fields;
    this.write = write;
  }

  with(fields: Fields): Logger {
    return new Logger(this.level, { ...this.fields, ...fields }, this.write);
  }

  enabled(level: LogLevel): boolean {
    return rank[level] >= rank[this.level];
  }

  debug(msg: string, fields?: Fields): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    this.log("error", msg, fields);
  }

  private log(level: LogLevel, msg: string, fields?: Fields): void {
    if (!this.enabled(level)) return;
    const entry: Fields = { ts: new Date().toISOString(), level, msg, ...this.fields, ...fields };
    for (const k of Object.keys(entry)) if (entry[k] === undefined) delete entry[k];
    this.write(JSON.stringify(entry));
  }
}
