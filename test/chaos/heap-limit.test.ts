import { test } from "vitest";
import { imageNodeOptions } from "../../bench/util.ts";
import { runScenario } from "./scenario.ts";

/** A fleet of key sets, so that the heap holds a realistic cache. */
const FLEET = 200;

test("the operator under a heap limit just above its working set: no OOM, no crash loop, nothing lost", async () => {
  await runScenario({
    name: `heap limit near the working set (${FLEET} extra key sets)`,
    fleet: FLEET,
    fault: async (ctx) => {
      const { operator, replaceOperator, trigger, hold } = ctx;
      const heapUsedMb = (await operator.metric("nodejs_heap_size_used_bytes")) / 2 ** 20;
      // A quarter over the converged heap: headroom for a re-list at start, not for a leak or an unbounded cache.
      const limitMb = Math.ceil(heapUsedMb * 1.25);
      console.error(
        `converged heap ${heapUsedMb.toFixed(1)} MB; restarting the operator with --max-old-space-size=${limitMb}`,
      );
      await replaceOperator({ nodeOptions: `${imageNodeOptions()} --max-old-space-size=${limitMb}` });
      await trigger();
      // Two rotation periods under the limit: the rotating key sets rotate twice while the whole fleet stays cached.
      await hold(120_000);
      const limited = ctx.operator;
      console.error(
        `under the limit: heap ${((await limited.metric("nodejs_heap_size_used_bytes")) / 2 ** 20).toFixed(1)} MB, peak RSS ${limited.rssMb("VmHWM").toFixed(0)} MB`,
      );
    },
  });
});
