import assert from "node:assert/strict";
import { IdleWatch } from "./idle_watch.ts";

Deno.test("a socket silent for the whole limit is closed once; one that sends frames is kept", () => {
  const watch = new IdleWatch(30_000, 5_000);
  const idled: string[] = [];
  const silent = watch.watch(() => idled.push("silent"));
  const talking = watch.watch(() => idled.push("talking"));
  for (let sweep = 1; sweep <= 5; sweep++) {
    talking.seen();
    watch.sweep();
  }
  assert.deepEqual(idled, [], "25 s of silence is inside the 30 s limit");
  talking.seen();
  watch.sweep();
  assert.deepEqual(idled, ["silent"]);
  for (let sweep = 0; sweep < 10; sweep++) watch.sweep();
  assert.deepEqual(idled, ["silent", "talking"], "each socket is handed over once");
  assert.equal(watch.size, 0);
  silent.forget();
  talking.forget();
});

Deno.test("the sweep runs only while a socket is watched (no timer left behind)", async () => {
  const watch = new IdleWatch(40, 10);
  let idled = 0;
  const entry = watch.watch(() => idled++);
  await new Promise((resolve) => setTimeout(resolve, 120));
  assert.equal(idled, 1, "the shared interval closed the silent socket");
  entry.forget();
  const kept = watch.watch(() => idled++);
  kept.forget();
  kept.forget();
  assert.equal(watch.size, 0);
  // The test sanitizer fails this test if the interval were still running here.
});
