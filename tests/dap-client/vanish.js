// A client that attaches, stops at a breakpoint, lists the threads, then
// dies without a word (as a killed editor does): goat must detach. Without
// FILE and LINE it sets no breakpoint and dies while the program runs.
// Prints one JSON line of what it saw before dying; tests/dap.rs checks it.
// Usage: node vanish.js GOAT PID [FILE LINE]
'use strict';
const { attached, runClient } = require('./attached');

async function main() {
  const [goat, pid, file, line] = process.argv.slice(2);
  // goat outlives this client: detached from it, it must not wait on it.
  const dc = await attached(goat, pid, { detached: true }, 60000);
  if (!file) {
    await dc.configurationDoneRequest();
    await new Promise((r) => setTimeout(r, 300));
    console.log(JSON.stringify({ running: true, goat: dc._adapterProcess.pid }));
    // Gone, mid-session, with the program running.
    process.exit(0);
  }
  await dc.setBreakpointsRequest({ source: { path: file }, breakpoints: [{ line: Number(line) }] });
  const stopped = dc.waitForEvent('stopped');
  await dc.configurationDoneRequest();
  const stop = (await stopped).body;
  const threads = (await dc.threadsRequest()).body.threads;
  const seen = {
    reason: stop.reason,
    threads: threads.length,
    names: [...new Set(threads.map((t) => t.name))].slice(0, 20),
    goat: dc._adapterProcess.pid,
  };
  console.log(JSON.stringify(seen));
  // Gone, mid-session, with the program stopped at a breakpoint.
  process.exit(0);
}

runClient(main);
