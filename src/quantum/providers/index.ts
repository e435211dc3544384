/** The remote QPU providers by the name a spec gives; adding one is a new file and one line here. */
import { ibmQuantum } from "./ibm-quantum.ts";
import type { ProviderFactory } from "./provider.ts";

export * from "./provider.ts";

export const providers: Record<string, ProviderFactory> = { IBMQuantum: ibmQuantum };

export const providerNames: string[] = Object.keys(providers);
