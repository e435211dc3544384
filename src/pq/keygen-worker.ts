import { parentPort } from "node:worker_threads";
import { type KeygenRequest, generateRotation } from "./rotation-keys.ts";

// Runs in a worker thread: key generation and the self-tests (seconds for SLH-DSA) never block the event loop.
parentPort?.on("message", (request: KeygenRequest) => {
  try {
    parentPort?.postMessage({ ok: true, value: generateRotation(request) });
  } catch (e) {
    // Messages of these errors name the algorithm and the failed check, never key material.
    parentPort?.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) });
  }
});
