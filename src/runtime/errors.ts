/**
 * An error that retrying will not fix (an invalid spec, a name owned by someone else). The controller records it
 * in a condition; the runtime logs it and does not requeue until the object changes.
 */
export class TerminalError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = "TerminalError";
    this.reason = reason;
  }
}
