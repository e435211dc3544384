/** Measurement counts: bitstring → number of shots, with bitstrings written the way Qiskit writes them. */

const BIT_DIGITS: Record<string, string> = { Zero: "0", One: "1", Loss: "-" };

/** Splits "a, [b, c], (d, e)" into its top-level items: commas inside brackets belong to the item. */
function splitTopLevel(list: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of list) {
    if (ch === "[" || ch === "(") depth++;
    if (ch === "]" || ch === ")") depth--;
    if (ch === "," && depth === 0) {
      items.push(current.trim());
      current = "";
    } else current += ch;
  }
  if (current.trim()) items.push(current.trim());
  return items;
}

/** One classical output item as bits, c[n-1] first; undefined when the item is not bit-typed (int, bool, float…). */
function registerBits(item: string): string | undefined {
  const elements = item.startsWith("[") && item.endsWith("]") ? splitTopLevel(item.slice(1, -1)) : [item];
  if (elements.length === 0 || !elements.every((e) => e in BIT_DIGITS)) return undefined;
  // The QDK lists c[0] first; Qiskit writes c[n-1]…c[0].
  return elements
    .map((e) => BIT_DIGITS[e])
    .reverse()
    .join("");
}

/**
 * One shot's QDK result for an OpenQASM program ("[One, Zero]", "One", "([One, Zero], One, 7, true)") as a Qiskit
 * bitstring ("01", "1 01"): each register c[n-1]…c[0], registers joined by a space with the last-declared first.
 * Only bit-typed items count; a lost qubit (qubit-loss noise) reads "-".
 */
export function qdkResultToBitstring(result: string): string {
  const trimmed = result.trim();
  // Several classical variables come as a tuple in declaration order, a single one bare.
  const items = trimmed.startsWith("(") && trimmed.endsWith(")") ? splitTopLevel(trimmed.slice(1, -1)) : [trimmed];
  return items
    .map(registerBits)
    .filter((bits) => bits !== undefined)
    .reverse()
    .join(" ");
}

/** The limit most frequent bitstrings as entries, most frequent first, ties in bitstring order. */
export function topCountEntries(counts: Record<string, number>, limit: number): Array<[string, number]> {
  return Object.entries(counts)
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, Math.max(0, limit));
}

/**
 * The limit most frequent bitstrings, inserted most frequent first, ties in bitstring order. JavaScript lists
 * integer-like keys ("1", "10", "11"…) before all others whatever the insertion order, so a caller that must show
 * the ranking iterates topCountEntries instead.
 */
export function topCounts(counts: Record<string, number>, limit: number): Record<string, number> {
  return Object.fromEntries(topCountEntries(counts, limit));
}
