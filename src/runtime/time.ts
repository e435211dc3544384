/** metav1.Time: RFC 3339 in whole seconds, as the API server writes it. */
export function metaTime(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z");
}

/** metav1.MicroTime: RFC 3339 with microseconds (Leases, events.k8s.io eventTime). */
export function microTime(d: Date): string {
  return d.toISOString().replace("Z", "000Z");
}
