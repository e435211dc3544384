import { type ParseArgsConfig, parseArgs } from "node:util";

/** A command-line mistake: main prints the message and usage, and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** parseArgs in strict mode, its errors turned into UsageErrors that name the command. */
export function parse<O extends Options>(command: string, args: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals,
    });
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
}
