/**
 * Comparing two simulators' measurement counts: a chi-square test of homogeneity (are both samples drawn from one
 * distribution?) and the total variation distance between them.
 */

export type Counts = Record<string, number>;

export interface Comparison {
  /** The chi-square statistic over the bins. */
  statistic: number;
  degreesOfFreedom: number;
  /** The chance of a statistic at least this large if both samples come from one distribution. */
  pValue: number;
  /** Half the L1 distance between the two empirical distributions, 0 to 1. */
  totalVariation: number;
  bins: number;
}

/**
 * Outcomes seen fewer than this many times in both samples together share a bin with other rare outcomes: the
 * chi-square approximation wants expected counts of about 5 or more in each sample.
 */
export const MIN_POOLED_PER_BIN = 10;

/**
 * Chi-square test of homogeneity of two samples. Outcomes are taken in order of their pooled count, most frequent
 * first; each is a bin of its own while its pooled count reaches MIN_POOLED_PER_BIN, and the rest are merged in
 * that order into bins that do (a short remainder joins the last bin). Merging by pooled count depends on nothing
 * that tells the samples apart, so the test stays valid; it only loses power on outcomes too rare to judge.
 */
export function compareCounts(a: Counts, b: Counts): Comparison {
  const totalA = sum(a);
  const totalB = sum(b);
  if (totalA === 0 || totalB === 0) throw new RangeError("both samples need at least one shot");
  const outcomes = [...new Set([...Object.keys(a), ...Object.keys(b)])].map((k) => ({
    a: a[k] ?? 0,
    b: b[k] ?? 0,
    key: k,
  }));
  outcomes.sort((x, y) => y.a + y.b - (x.a + x.b) || (x.key < y.key ? -1 : 1));
  const bins: Array<{ a: number; b: number }> = [];
  let open = { a: 0, b: 0 };
  for (const o of outcomes) {
    open = { a: open.a + o.a, b: open.b + o.b };
    if (open.a + open.b >= MIN_POOLED_PER_BIN) {
      bins.push(open);
      open = { a: 0, b: 0 };
    }
  }
  if (open.a + open.b > 0) {
    const last = bins.pop() ?? { a: 0, b: 0 };
    bins.push({ a: last.a + open.a, b: last.b + open.b });
  }
  let statistic = 0;
  for (const bin of bins) {
    const pooled = bin.a + bin.b;
    const expectedA = (pooled * totalA) / (totalA + totalB);
    const expectedB = (pooled * totalB) / (totalA + totalB);
    statistic += (bin.a - expectedA) ** 2 / expectedA + (bin.b - expectedB) ** 2 / expectedB;
  }
  const degreesOfFreedom = Math.max(1, bins.length - 1);
  let totalVariation = 0;
  for (const o of outcomes) totalVariation += Math.abs(o.a / totalA - o.b / totalB);
  return {
    statistic,
    degreesOfFreedom,
    pValue: bins.length < 2 ? 1 : chiSquareSurvival(statistic, degreesOfFreedom),
    totalVariation: totalVariation / 2,
    bins: bins.length,
  };
}

/** The counts of the bits at `positions` of each bitstring (0 the leftmost character). */
export function marginal(counts: Counts, positions: number[]): Counts {
  const out: Counts = {};
  for (const [bits, n] of Object.entries(counts)) {
    const key = positions.map((p) => bits[p]).join("");
    out[key] = (out[key] ?? 0) + n;
  }
  return out;
}

/** Each bitstring written backwards: what a simulator that numbered bits the other way round would report. */
export function reversed(counts: Counts): Counts {
  return Object.fromEntries(Object.entries(counts).map(([bits, n]) => [[...bits].reverse().join(""), n]));
}

/** P(X ≥ x) for X chi-square distributed with k degrees of freedom: the regularized upper gamma Q(k/2, x/2). */
export function chiSquareSurvival(x: number, k: number): number {
  if (x <= 0) return 1;
  return upperRegularizedGamma(k / 2, x / 2);
}

const sum = (counts: Counts) => Object.values(counts).reduce((s, n) => s + n, 0);

const EPSILON = 1e-15;
const MAX_ITERATIONS = 10_000;

/** Q(a, x): a series for P when x < a + 1, else Lentz's continued fraction for Q (Numerical Recipes, 6.2). */
function upperRegularizedGamma(a: number, x: number): number {
  const logPrefactor = a * Math.log(x) - x - logGamma(a);
  if (x < a + 1) {
    let term = 1 / a;
    let total = term;
    for (let n = 1; n < MAX_ITERATIONS && Math.abs(term) > Math.abs(total) * EPSILON; n++) {
      term *= x / (a + n);
      total += term;
    }
    return Math.max(0, 1 - total * Math.exp(logPrefactor));
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < MAX_ITERATIONS; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPSILON) break;
  }
  return Math.exp(logPrefactor) * h;
}

// Lanczos' approximation (g = 7, n = 9), accurate to about 15 digits for positive arguments.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

function logGamma(z: number): number {
  if (z < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * z))) - logGamma(1 - z);
  const shifted = z - 1;
  let series = LANCZOS[0] as number;
  for (let i = 1; i < LANCZOS.length; i++) series += (LANCZOS[i] as number) / (shifted + i);
  const t = shifted + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (shifted + 0.5) * Math.log(t) - t + Math.log(series);
}
