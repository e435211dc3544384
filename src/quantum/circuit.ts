/**
 * A light, best-effort analysis of OpenQASM 3 (and 2.0) for placement: how many qubits a circuit needs, its
 * classical registers and how many gates of each width it applies. It rejects only what placement cannot work
 * around (undeclared registers, qubit indexes out of range) and what is clearly not OpenQASM: the QDK compiler
 * validates the program in full elsewhere.
 */
import { createHash } from "node:crypto";

export interface CircuitStats {
  /** Total qubits declared (qubit[n] q; qubit q; qreg q[n];), or for physical qubits the highest $n + 1. */
  qubits: number;
  /** Classical registers declared at the top level (bit[n] c; bit c; creg c[n]; output bit[n] c;), in order. */
  registers: { name: string; size: number }[];
  /** Gate applications by width. Measurements are counted per qubit; they are not gates, and total leaves them out. */
  gates: { singleQubit: number; twoQubit: number; multiQubit: number; measurements: number; total: number };
  /** "sha256:<hex>" of the source with line endings normalised to \n. */
  hash: string;
}

export type CircuitAnalysis =
  { ok: true; stats: CircuitStats } | { ok: false; message: string; line: number; column: number };

/** Analyses an OpenQASM program; a failure carries a 1-based line and column. */
export function analyzeCircuit(source: string): CircuitAnalysis {
  const normalised = source.replace(/\r\n?/g, "\n");
  try {
    const stats = new Analyzer(tokenize(normalised)).run();
    return { ok: true, stats: { ...stats, hash: `sha256:${createHash("sha256").update(normalised).digest("hex")}` } };
  } catch (e) {
    if (e instanceof QasmError) return { ok: false, message: e.message, line: e.line, column: e.column };
    throw e;
  }
}

class QasmError extends Error {
  readonly line: number;
  readonly column: number;
  constructor(message: string, at: { line: number; column: number }) {
    super(message);
    this.line = at.line;
    this.column = at.column;
  }
}

interface Token {
  kind: "id" | "num" | "str" | "phys" | "op" | "eof";
  text: string;
  /** A number literal's (or physical qubit's) value; NaN for durations and other literals with a unit. */
  value: number;
  line: number;
  column: number;
  /** For a bracket, the index of the bracket that closes (or opens) it; otherwise -1. */
  partner: number;
}

const NUMBER =
  /(0[xX][\da-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)([\p{L}_]*)/uy;
const PHYSICAL_QUBIT = /\$\d+/y;
const STRING = /"[^"\n]*"|'[^'\n]*'/y;
const OPERATOR = /\*\*=|<<=|>>=|->|\*\*|==|!=|<=|>=|<<|>>|&&|\|\||\+\+|[+\-*/%&|^~]=|[+\-*/%&|^~!<>=;,.()[\]{}@:]/y;
// Lines the grammar hands over whole to tools: pragmas and annotations (@bind ...).
const DIRECTIVE = /(?:#?pragma(?![\p{L}\p{N}_])|@[\p{L}_])[^\n]*/uy;
const OPENERS: Record<string, string> = { ")": "(", "]": "[", "}": "{" };

// Character classes by code, with a Unicode fallback: the scanner runs once per character of large circuits.
const isDigit = (c: number) => c >= 48 && c <= 57;
const isAsciiLetter = (c: number) => (c | 32) >= 97 && (c | 32) <= 122;
const isIdentifierStart = (c: number, ch: string) => isAsciiLetter(c) || c === 95 || (c > 127 && /\p{L}/u.test(ch));
const isIdentifierPart = (c: number, ch: string) =>
  isIdentifierStart(c, ch) || isDigit(c) || (c > 127 && /\p{N}/u.test(ch));

/** Splits the source into tokens, dropping comments and directives, and pairs up brackets. */
function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  const open: number[] = [];
  let pos = 0;
  let line = 1;
  let lineStart = 0;
  const here = () => ({ line, column: pos - lineStart + 1 });
  const match = (pattern: RegExp) => {
    pattern.lastIndex = pos;
    return pattern.exec(source);
  };
  const push = (kind: Token["kind"], text: string, value = NaN, partner = -1) => {
    tokens.push({ kind, text, value, line, column: pos - lineStart + 1, partner });
    pos += text.length;
  };
  while (pos < source.length) {
    const c = source.charCodeAt(pos);
    const ch = source[pos] as string;
    let m: RegExpExecArray | null;
    if (c === 10) {
      line++;
      lineStart = ++pos;
    } else if (c === 32 || (c >= 9 && c <= 13) || (c > 127 && /\s/.test(ch))) {
      pos++;
    } else if (c === 47 && source.charCodeAt(pos + 1) === 47) {
      const end = source.indexOf("\n", pos);
      pos = end < 0 ? source.length : end;
    } else if (c === 47 && source.charCodeAt(pos + 1) === 42) {
      const end = source.indexOf("*/", pos + 2);
      if (end < 0) throw new QasmError("this /* comment is never closed", here());
      for (let nl = source.indexOf("\n", pos); nl >= 0 && nl < end; nl = source.indexOf("\n", nl + 1)) {
        line++;
        lineStart = nl + 1;
      }
      pos = end + 2;
    } else if ((ch === "#" || ch === "@" || ch === "p") && tokens.at(-1)?.line !== line && match(DIRECTIVE)) {
      pos = DIRECTIVE.lastIndex;
    } else if (isIdentifierStart(c, ch)) {
      let end = pos + 1;
      while (end < source.length && isIdentifierPart(source.charCodeAt(end), source[end] as string)) end++;
      push("id", source.slice(pos, end));
    } else if ((isDigit(c) || (ch === "." && isDigit(source.charCodeAt(pos + 1)))) && (m = match(NUMBER))) {
      push("num", m[0], m[2] ? NaN : Number((m[1] as string).replaceAll("_", "")));
    } else if (ch === "$" && (m = match(PHYSICAL_QUBIT))) {
      push("phys", m[0], Number(m[0].slice(1)));
    } else if ((ch === '"' || ch === "'") && (m = match(STRING))) {
      push("str", m[0]);
    } else if ((m = match(OPERATOR))) {
      const text = m[0];
      const opener = OPENERS[text];
      let partner = -1;
      if (text === "(" || text === "[" || text === "{") open.push(tokens.length);
      else if (opener) {
        partner = open.pop() ?? -1;
        const openToken = tokens[partner];
        if (!openToken) throw new QasmError(`'${text}' closes nothing`, here());
        if (openToken.text !== opener) {
          const where = `line ${openToken.line}, column ${openToken.column}`;
          throw new QasmError(`'${text}' cannot close the '${openToken.text}' at ${where}`, here());
        }
        openToken.partner = tokens.length;
      }
      push("op", text, NaN, partner);
    } else {
      throw new QasmError(
        `unexpected character ${JSON.stringify(String.fromCodePoint(source.codePointAt(pos) ?? 0))}`,
        here(),
      );
    }
  }
  const unclosed = open.pop();
  if (unclosed !== undefined) {
    const t = tokens[unclosed] as Token;
    throw new QasmError(`this '${t.text}' is never closed`, t);
  }
  tokens.push({ kind: "eof", text: "", value: NaN, ...here(), partner: -1 });
  return tokens;
}

function describe(t: Token): string {
  if (t.kind === "eof") return "the end of the source";
  if (t.kind === "str") return "a string";
  return `'${t.text}'`;
}

interface Counts {
  single: number;
  two: number;
  multi: number;
  measurements: number;
}

const noCounts = (): Counts => ({ single: 0, two: 0, multi: 0, measurements: 0 });

function addCounts(into: Counts, add: Counts, times: number): void {
  into.single += add.single * times;
  into.two += add.two * times;
  into.multi += add.multi * times;
  into.measurements += add.measurements * times;
}

/** What a name stands for: a register (size unknown when it is not a constant), a known value, or anything else. */
type Sym =
  | { kind: "qubits" | "bits"; size: number | undefined }
  | { kind: "value"; value: number | undefined }
  | { kind: "other" };

interface Operand {
  kind: Sym["kind"];
  /** Qubits (or bits) it names; undefined when not known. */
  size: number | undefined;
  /** A whole register or a slice: a gate on it applies once per element. */
  broadcast: boolean;
}

/** A half-open range of token indexes. */
type Span = readonly [number, number];

class Scope {
  readonly parent: Scope | undefined;
  readonly names = new Map<string, Sym>();
  constructor(parent?: Scope) {
    this.parent = parent;
  }
  lookup(name: string): Sym | undefined {
    return this.names.get(name) ?? this.parent?.lookup(name);
  }
}

/** The number of values in the inclusive range start:step:end, when all three are known integers. */
function rangeLength(start?: number, step?: number, end?: number): number | undefined {
  if (start === undefined || step === undefined || end === undefined || step === 0) return undefined;
  if (![start, step, end].every(Number.isInteger)) return undefined;
  return Math.max(0, Math.floor((end - start) / step) + 1);
}

const MODIFIERS = new Set(["ctrl", "negctrl", "inv", "pow"]);
const CLASSICAL_TYPES = new Set(["int", "uint", "float", "angle", "bool", "complex", "duration", "stretch", "array"]);
// Statements that declare nothing placement needs and apply no gates (measurements in them are still counted).
const SKIPPED = new Set([
  "OPENQASM",
  "include",
  "defcalgrammar",
  "extern",
  "opaque",
  "break",
  "continue",
  "end",
  "return",
]);
const ASSIGNMENTS = new Set(["=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "~=", "<<=", ">>=", "**="]);

/** Reads the statements in order, keeping the names in scope and the counts. */
class Analyzer {
  private readonly tokens: Token[];
  private i = 0;
  private readonly global = new Scope();
  private scope = this.global;
  private counts = noCounts();
  /** Re-reading a loop body at its last iteration only to check indexes: the stats are left alone. */
  private checking = false;
  /** Loop variables bound to a value while reading a body, for error messages. */
  private readonly bindings: string[] = [];
  private qubits = 0;
  private physicalQubits = 0;
  private readonly registers: { name: string; size: number }[] = [];
  /** What one call of each subroutine (def) applies. */
  private readonly subroutines = new Map<string, Counts>();

  constructor(tokens: Token[]) {
    this.tokens = tokens;
  }

  run(): Omit<CircuitStats, "hash"> {
    while (this.peek().kind !== "eof") this.statement();
    const { single, two, multi, measurements } = this.counts;
    return {
      qubits: Math.max(this.qubits, this.physicalQubits),
      registers: this.registers,
      gates: { singleQubit: single, twoQubit: two, multiQubit: multi, measurements, total: single + two + multi },
    };
  }

  private at(k: number): Token {
    return this.tokens[Math.min(k, this.tokens.length - 1)] as Token;
  }

  private peek(): Token {
    return this.at(this.i);
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== "eof") this.i++;
    return t;
  }

  private isOp(text: string, k = this.i): boolean {
    const t = this.at(k);
    return t.kind === "op" && t.text === text;
  }

  private isWord(text: string, k = this.i): boolean {
    const t = this.at(k);
    return t.kind === "id" && t.text === text;
  }

  private eat(text: string): boolean {
    if (!this.isOp(text)) return false;
    this.i++;
    return true;
  }

  private expect(text: string): void {
    if (!this.eat(text)) throw new QasmError(`expected '${text}', found ${describe(this.peek())}`, this.peek());
  }

  private expectName(what: string): Token {
    const t = this.next();
    if (t.kind !== "id") throw new QasmError(`expected ${what}, found ${describe(t)}`, t);
    return t;
  }

  /** Moves past the bracketed group that starts here, if one does. */
  private skipGroup(open: string): void {
    if (this.isOp(open)) this.i = this.peek().partner + 1;
  }

  /** Splits a span at the separators outside brackets. */
  private split([from, to]: Span, separator: string): Span[] {
    const parts: Span[] = [];
    let start = from;
    for (let k = from; k < to; k++) {
      const t = this.at(k);
      if (t.partner > k) k = t.partner;
      else if (t.kind === "op" && t.text === separator) {
        parts.push([start, k]);
        start = k + 1;
      }
    }
    parts.push([start, to]);
    return parts;
  }

  /** The value of an integer expression over literals, constants and loop variables; undefined when not known. */
  private evaluate([from, to]: Span): number | undefined {
    const tokens = this.at.bind(this);
    const scope = this.scope;
    let j = from;
    const op = () => (j < to && tokens(j).kind === "op" ? tokens(j).text : undefined);
    const giveUp = () => {
      j = to + 1;
      return NaN;
    };
    const primary = (): number => {
      if (j >= to) return giveUp();
      const t = tokens(j++);
      if (t.kind === "num") return t.value;
      if (t.kind === "id") {
        const sym = scope.lookup(t.text);
        return sym?.kind === "value" && sym.value !== undefined ? sym.value : NaN;
      }
      if (t.text !== "(") return giveUp();
      const v = sum();
      if (op() !== ")") return giveUp();
      j++;
      return v;
    };
    const unary = (): number => {
      const sign = op();
      if (sign !== "-" && sign !== "+") return power();
      j++;
      return sign === "-" ? -unary() : unary();
    };
    const power = (): number => {
      const base = primary();
      if (op() !== "**") return base;
      j++;
      return base ** unary();
    };
    const product = (): number => {
      let v = unary();
      for (let o = op(); o === "*" || o === "/" || o === "%"; o = op()) {
        j++;
        const r = unary();
        if (o === "*") v *= r;
        else if (o === "%") v %= r;
        else v = Number.isInteger(v) && Number.isInteger(r) ? Math.trunc(v / r) : v / r;
      }
      return v;
    };
    const sum = (): number => {
      let v = product();
      for (let o = op(); o === "+" || o === "-"; o = op()) {
        j++;
        v = o === "+" ? v + product() : v - product();
      }
      return v;
    };
    const v = sum();
    return j === to && Number.isFinite(v) ? v : undefined;
  }

  private statement(): void {
    const t = this.peek();
    if (t.kind === "op") {
      if (t.text === "{") return this.block(new Scope(this.scope));
      if (t.text === ";") return void this.i++;
      return this.skipStatement();
    }
    if (t.kind !== "id") {
      throw new QasmError(`a statement cannot start with ${describe(t)}: this does not look like OpenQASM`, t);
    }
    switch (t.text) {
      case "qubit":
      case "qreg":
        return this.quantumDeclaration();
      case "bit":
      case "creg":
        return this.bitDeclaration();
      case "input":
      case "output":
        this.i++;
        return this.isWord("bit") || this.isWord("creg") ? this.bitDeclaration() : this.classicalDeclaration(false);
      case "const":
        this.i++;
        return this.classicalDeclaration(true);
      case "gate":
      case "defcal":
      case "cal":
        return this.skipDefinition();
      case "def":
        return this.subroutine();
      case "measure":
        return this.measure();
      case "reset":
      case "barrier":
      case "delay":
        return this.nonUnitary();
      case "let":
        return this.alias();
      case "for":
        return this.forLoop();
      case "if":
      case "while":
        return this.conditional();
      case "switch":
        return this.switchStatement();
      case "box":
        this.i++;
        this.skipGroup("[");
        return this.body();
      default:
        if (CLASSICAL_TYPES.has(t.text)) return this.classicalDeclaration(false);
        if (SKIPPED.has(t.text)) return this.skipStatement();
        return this.callOrAssignment();
    }
  }

  private block(scope: Scope): void {
    this.expect("{");
    const outer = this.scope;
    this.scope = scope;
    while (!this.isOp("}") && this.peek().kind !== "eof") this.statement();
    this.expect("}");
    this.scope = outer;
  }

  /** A block, or the single statement that stands for one (if (c) x q;). */
  private body(): void {
    if (this.isOp("{")) this.block(new Scope(this.scope));
    else this.statement();
  }

  /** Skips a statement this analysis does not model, still counting the measurements and subroutine calls in it. */
  private skipStatement(): void {
    const start = this.peek();
    for (let depth = 0; ;) {
      const t = this.peek();
      if (t.kind === "eof" || (t.kind === "op" && t.text === "}" && depth === 0)) {
        throw new QasmError(`expected ';' to end the statement that starts with ${describe(start)}`, start);
      }
      this.i++;
      if (t.kind === "op") {
        if (t.text === ";" && depth === 0) return;
        if (t.partner > this.i - 1) depth++;
        else if (t.partner >= 0) depth--;
      } else if (t.kind === "id" && t.text === "measure") {
        this.countMeasurement(this.operand("qubits"));
      } else if (t.kind === "id" && this.isOp("(")) {
        const called = this.subroutines.get(t.text);
        if (called) addCounts(this.counts, called, 1);
      }
    }
  }

  private skipDefinition(): void {
    const keyword = this.next();
    while (!this.isOp("{")) {
      const t = this.next();
      if (t.kind === "eof" || (t.kind === "op" && (t.text === ";" || t.text === "}"))) {
        throw new QasmError(`this ${keyword.text} definition has no body`, keyword);
      }
    }
    this.skipGroup("{");
  }

  /** def name(params) -> type { body }: the body is read once; each call counts what it applies. */
  private subroutine(): void {
    this.i++;
    const name = this.expectName("a subroutine name");
    if (!this.isOp("(")) throw new QasmError(`expected '(' after def ${name.text}`, this.peek());
    const close = this.peek().partner;
    const scope = new Scope(this.scope);
    for (const [from, to] of this.split([this.i + 1, close], ",")) {
      const type = this.at(from);
      const param = this.at(to - 1);
      if (to <= from || param.kind !== "id") continue;
      const size = this.isOp("[", from + 1) ? this.evaluate([from + 2, this.at(from + 1).partner]) : 1;
      const kind = type.text === "qubit" || type.text === "qreg" ? "qubits" : type.text === "bit" ? "bits" : undefined;
      scope.names.set(param.text, kind ? { kind, size } : { kind: "other" });
    }
    this.i = close + 1;
    while (!this.isOp("{")) {
      const t = this.next();
      if (t.kind === "eof" || (t.kind === "op" && t.text === ";")) {
        throw new QasmError(`subroutine ${name.text} has no body`, name);
      }
    }
    const outer = this.counts;
    this.counts = noCounts();
    this.block(scope);
    if (!this.checking) this.subroutines.set(name.text, this.counts);
    this.counts = outer;
  }

  private designator(): { value: number | undefined; at: Token } | undefined {
    if (!this.isOp("[")) return undefined;
    const open = this.i;
    const close = this.peek().partner;
    this.i = close + 1;
    return { value: this.evaluate([open + 1, close]), at: this.at(open + 1) };
  }

  private registerSize(name: Token, designator: { value: number | undefined; at: Token } | undefined): number {
    if (!designator) return 1;
    const { value, at } = designator;
    if (value === undefined) {
      throw new QasmError(`the size of ${name.text} is not a constant this analysis can evaluate`, at);
    }
    if (!Number.isInteger(value) || value < 1) {
      throw new QasmError(`the size of ${name.text} must be a positive integer, not ${value}`, at);
    }
    return value;
  }

  private define(name: Token, sym: Sym): void {
    if (this.scope === this.global && this.global.names.has(name.text)) {
      throw new QasmError(`${name.text} is already declared`, name);
    }
    this.scope.names.set(name.text, sym);
  }

  /** qubit[n] q; qubit q; qreg q[n]; */
  private quantumDeclaration(): void {
    const keyword = this.next();
    const designated = keyword.text === "qubit" ? this.designator() : undefined;
    const name = this.expectName("a register name");
    const oldStyle = keyword.text === "qreg" ? this.designator() : undefined;
    this.expect(";");
    const size = this.registerSize(name, designated ?? oldStyle);
    this.define(name, { kind: "qubits", size });
    if (!this.checking) this.qubits += size;
  }

  /** bit[n] c; bit c; creg c[n]; with an optional initialiser (bit b = measure q[0];). */
  private bitDeclaration(): void {
    const keyword = this.next();
    const designated = keyword.text === "bit" ? this.designator() : undefined;
    const name = this.expectName("a register name");
    const oldStyle = keyword.text === "creg" ? this.designator() : undefined;
    const size = this.registerSize(name, designated ?? oldStyle);
    if (!this.eat("=")) this.expect(";");
    else if (this.isWord("measure")) {
      this.i++;
      this.countMeasurement(this.operand("qubits"));
      this.expect(";");
    } else this.skipStatement();
    this.define(name, { kind: "bits", size });
    if (this.scope === this.global && !this.checking) this.registers.push({ name: name.text, size });
  }

  /** int[32] x = ...; const uint n = 4; (a constant's value is kept for sizes, indexes and ranges). */
  private classicalDeclaration(constant: boolean): void {
    this.next();
    this.skipGroup("[");
    const name = this.peek();
    if (name.kind !== "id") return this.skipStatement();
    this.i++;
    let value: number | undefined;
    if (constant && this.eat("=")) {
      let end = this.i;
      while (!this.isOp(";", end) && !this.isOp("}", end) && this.at(end).kind !== "eof") {
        end = this.at(end).partner > end ? this.at(end).partner + 1 : end + 1;
      }
      value = this.evaluate([this.i, end]);
    }
    this.define(name, constant ? { kind: "value", value } : { kind: "other" });
    if (!this.eat(";")) this.skipStatement();
  }

  /** measure q; measure q -> c; */
  private measure(): void {
    this.i++;
    const measured = this.operand("qubits");
    if (this.eat("->")) this.operand("any");
    this.expect(";");
    this.countMeasurement(measured);
  }

  /** reset, barrier and delay: they name qubits but are not gates. */
  private nonUnitary(): void {
    this.next();
    this.skipGroup("[");
    if (!this.isOp(";"))
      do this.operand("qubits");
      while (this.eat(","));
    this.expect(";");
  }

  /** let a = q[0:2] ++ r; */
  private alias(): void {
    this.i++;
    const name = this.expectName("an alias name");
    this.expect("=");
    const parts = [this.operand("any")];
    while (this.eat("++")) parts.push(this.operand("any"));
    this.expect(";");
    const kind = (parts[0] as Operand).kind;
    const size = parts.every((p) => p.size !== undefined)
      ? parts.reduce((n, p) => n + (p.size as number), 0)
      : undefined;
    this.define(name, kind === "qubits" || kind === "bits" ? { kind, size } : { kind: "other" });
  }

  /** if (cond) body [else body]; while (cond) body: each body is counted once. */
  private conditional(): void {
    const keyword = this.next();
    if (!this.isOp("(")) throw new QasmError(`expected '(' after ${keyword.text}`, this.peek());
    this.skipGroup("(");
    this.body();
    if (keyword.text === "if" && this.isWord("else")) {
      this.i++;
      this.body();
    }
  }

  /** switch (x) { case 0, 1 { } default { } }: each case is counted once. */
  private switchStatement(): void {
    const keyword = this.next();
    if (!this.isOp("(")) throw new QasmError(`expected '(' after ${keyword.text}`, this.peek());
    this.skipGroup("(");
    this.expect("{");
    while (!this.isOp("}") && this.peek().kind !== "eof") {
      const label = this.next();
      if (label.text !== "case" && label.text !== "default") {
        throw new QasmError(`expected 'case' or 'default', found ${describe(label)}`, label);
      }
      while (!this.isOp("{")) {
        const t = this.next();
        if (t.kind === "eof" || (t.kind === "op" && (t.text === ";" || t.text === "}"))) {
          throw new QasmError(`this ${label.text} has no body`, label);
        }
      }
      this.block(new Scope(this.scope));
    }
    this.expect("}");
  }

  /**
   * for [type] i in [a:b] / [a:step:b] / {v, ...} body: the body counts once per iteration. It is read with i at
   * its first value, and read again at its last to check indexes such as q[i + 1]. Other loops count it once.
   */
  private forLoop(): void {
    const keyword = this.next();
    let k = this.i;
    while (!this.isWord("in", k)) {
      const t = this.at(k);
      if (t.kind === "eof" || (t.kind === "op" && (t.text === ";" || t.text === "{" || t.text === "}"))) {
        throw new QasmError("expected 'in' in this for loop", keyword);
      }
      k = t.partner > k ? t.partner + 1 : k + 1;
    }
    const variable = this.at(k - 1);
    if (k === this.i || variable.kind !== "id") throw new QasmError("expected a loop variable before 'in'", this.at(k));
    this.i = k + 1;
    const { count, first, last } = this.loopValues();
    const bodyStart = this.i;
    const outer = this.counts;
    this.counts = noCounts();
    this.loopBody(variable.text, count === 0 ? undefined : first);
    addCounts(outer, this.counts, count ?? 1);
    if (count !== undefined && count > 1 && last !== undefined && last !== first) {
      const bodyEnd = this.i;
      const wasChecking = this.checking;
      this.i = bodyStart;
      this.checking = true;
      this.loopBody(variable.text, last);
      this.checking = wasChecking;
      this.i = bodyEnd;
    }
    this.counts = outer;
  }

  private loopValues(): { count?: number; first?: number; last?: number } {
    const open = this.i;
    if (this.isOp("[")) {
      this.skipGroup("[");
      const parts = this.split([open + 1, this.at(open).partner], ":");
      if (parts.length < 2) return {};
      const start = this.evaluate(parts[0] as Span);
      const end = this.evaluate(parts.at(-1) as Span);
      const step = parts.length === 3 ? this.evaluate(parts[1] as Span) : 1;
      const count = rangeLength(start, step, end);
      if (count === undefined) return {};
      return { count, first: start, last: (start as number) + (count - 1) * (step as number) };
    }
    if (this.isOp("{")) {
      this.skipGroup("{");
      const elements = this.split([open + 1, this.at(open).partner], ",").filter(([a, b]) => b > a);
      const value = (span: Span | undefined) => (span ? this.evaluate(span) : undefined);
      return { count: elements.length, first: value(elements[0]), last: value(elements.at(-1)) };
    }
    // A register or an array: its length is not worked out here.
    this.next();
    while (this.isOp("[")) this.skipGroup("[");
    return {};
  }

  private loopBody(variable: string, value: number | undefined): void {
    const scope = new Scope(this.scope);
    scope.names.set(variable, { kind: "value", value });
    if (value !== undefined) this.bindings.push(`${variable} = ${value}`);
    const outer = this.scope;
    this.scope = scope;
    this.body();
    this.scope = outer;
    if (value !== undefined) this.bindings.pop();
  }

  /** A statement that starts with a name: a gate call, an assignment, or an expression such as a call. */
  private callOrAssignment(): void {
    if (this.isModifier(this.i)) return this.gateCall();
    let k = this.i + 1;
    while (this.isOp("[", k)) k = this.at(k).partner + 1;
    const op = this.at(k);
    if (op.kind === "op" && ASSIGNMENTS.has(op.text)) {
      if (op.text !== "=" || !this.isWord("measure", k + 1)) return this.skipStatement();
      this.operand("any");
      this.i = k + 2;
      this.countMeasurement(this.operand("qubits"));
      return this.expect(";");
    }
    k = this.i + 1;
    if (this.isOp("(", k)) k = this.at(k).partner + 1;
    if (this.isOp("[", k)) k = this.at(k).partner + 1;
    const operand = this.at(k);
    if (operand.kind === "id" || operand.kind === "phys") return this.gateCall();
    this.skipStatement();
  }

  private isModifier(k: number): boolean {
    if (!MODIFIERS.has(this.at(k).text) || this.at(k).kind !== "id") return false;
    return this.isOp("@", k + 1) || (this.isOp("(", k + 1) && this.isOp("@", this.at(k + 1).partner + 1));
  }

  /** [modifiers @] name[(params)][[duration]] operands; a gate's width is its operand count, controls included. */
  private gateCall(): void {
    while (this.isModifier(this.i)) {
      this.i++;
      this.skipGroup("(");
      this.expect("@");
    }
    this.expectName("a gate name");
    this.skipGroup("(");
    this.skipGroup("[");
    const operands: Operand[] = [];
    if (!this.isOp(";"))
      do operands.push(this.operand("qubits"));
      while (this.eat(","));
    this.expect(";");
    if (!operands.length) return;
    const sizes = operands.filter((o) => o.broadcast).map((o) => o.size ?? 1);
    const times = sizes.length ? Math.max(...sizes) : 1;
    if (operands.length === 1) this.counts.single += times;
    else if (operands.length === 2) this.counts.two += times;
    else this.counts.multi += times;
  }

  private countMeasurement(measured: Operand): void {
    this.counts.measurements += measured.size ?? 1;
  }

  /** A register operand: q, q[i], q[a:b], q[{i, j}] or $n, checked against its declaration. */
  private operand(expected: "qubits" | "any"): Operand {
    const t = this.next();
    if (t.kind === "phys") {
      this.physicalQubits = Math.max(this.physicalQubits, t.value + 1);
      return { kind: "qubits", size: 1, broadcast: false };
    }
    if (t.kind !== "id") {
      throw new QasmError(
        `expected ${expected === "qubits" ? "a qubit operand" : "a register"}, found ${describe(t)}`,
        t,
      );
    }
    const sym = this.scope.lookup(t.text);
    if (!sym) throw new QasmError(`register ${t.text} is not declared`, t);
    if (expected === "qubits" && sym.kind !== "qubits") throw new QasmError(`${t.text} is not a qubit register`, t);
    const size = sym.kind === "qubits" || sym.kind === "bits" ? sym.size : undefined;
    if (!this.isOp("[")) return { kind: sym.kind, size, broadcast: true };
    const open = this.i;
    this.skipGroup("[");
    // Further dimensions index classical arrays; they change nothing here.
    while (this.isOp("[")) this.skipGroup("[");
    return this.selection(t.text, sym.kind, size, [open + 1, this.at(open).partner]);
  }

  /** The elements an index selects from a register of the given size, each checked to be in range. */
  private selection(name: string, kind: Sym["kind"], size: number | undefined, span: Span): Operand {
    const check = (value: number | undefined, at: Token) => {
      if (size === undefined || value === undefined || !Number.isInteger(value)) return;
      if (value >= -size && value < size) return;
      const unit = `${kind === "qubits" ? "qubit" : "bit"}${size === 1 ? "" : "s"}`;
      const when = this.bindings.length ? ` (when ${this.bindings.join(", ")})` : "";
      throw new QasmError(`${name}[${value}] is out of range: ${name} has ${size} ${unit}${when}`, at);
    };
    const [from] = span;
    if (this.isOp("{", from)) {
      const elements = this.split([from + 1, this.at(from).partner], ",").filter(([a, b]) => b > a);
      for (const element of elements) check(this.evaluate(element), this.at(element[0]));
      return { kind, size: elements.length, broadcast: true };
    }
    const parts = this.split(span, ":");
    if (parts.length === 1) {
      check(this.evaluate(span), this.at(from));
      return { kind, size: 1, broadcast: false };
    }
    const first = parts[0] as Span;
    const last = parts.at(-1) as Span;
    const start = first[1] > first[0] ? this.evaluate(first) : 0;
    const end = last[1] > last[0] ? this.evaluate(last) : size === undefined ? undefined : size - 1;
    const step = parts.length === 3 ? this.evaluate(parts[1] as Span) : 1;
    const length = rangeLength(start, step, end);
    if (length === undefined) return { kind, size: undefined, broadcast: true };
    if (length > 0) {
      check(start, this.at(from));
      check((start as number) + (length - 1) * (step as number), this.at(last[1] > last[0] ? last[0] : from));
    }
    return { kind, size: length, broadcast: true };
  }
}
