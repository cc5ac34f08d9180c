// `threads` while the program runs under `goat dap`: attach, let it run
// with no breakpoint, and list its goroutines twice, with no `stopped`
// event; any other request of a running program is refused at once.
// Then a pause (the program was running), the same goroutines listed
// stopped, a breakpoint hit (it ran on), and a disconnect while it runs.
// Prints one JSON line; tests/dap.rs checks it.
// Usage: node running.js GOAT PID FILE LINE
'use strict';
const { attached, runClient } = require('./attached');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const [goat, pid, file, line] = process.argv.slice(2);
  const dc = await attached(goat, pid, {}, 60000);
  const stops = [];
  dc.on('stopped', (e) => stops.push(e.body.reason));
  await dc.configurationDoneRequest();
  await sleep(300);
  const seen = {};
  const listed = [];
  for (let i = 0; i < 2; i++) {
    const started = Date.now();
    const threads = (await dc.threadsRequest()).body.threads;
    listed.push({
      count: threads.length,
      ids: new Set(threads.map((t) => t.id)).size,
      names: [...new Set(threads.map((t) => t.name))].sort(),
      ms: Date.now() - started,
    });
    await sleep(200);
  }
  seen.running = listed;
  seen.refused = await dc
    .stackTraceRequest({ threadId: 1 })
    .then(() => 'answered', (e) => `error: ${e.message}`);
  await sleep(300);
  seen.stopsWhileRunning = stops.slice();
  let stopped = dc.waitForEvent('stopped');
  await dc.pauseRequest({ threadId: 1 });
  seen.pause = (await stopped).body.reason;
  const threads = (await dc.threadsRequest()).body.threads;
  seen.paused = { count: threads.length, names: [...new Set(threads.map((t) => t.name))].sort() };
  await dc.setBreakpointsRequest({ source: { path: file }, breakpoints: [{ line: Number(line) }] });
  stopped = dc.waitForEvent('stopped');
  await dc.continueRequest({ threadId: 1 });
  seen.later = (await stopped).body.reason;
  await dc.setBreakpointsRequest({ source: { path: file }, breakpoints: [] });
  await dc.continueRequest({ threadId: 1 });
  await sleep(200);
  // Disconnect with the program running: the run stops, goat detaches.
  await dc.disconnectRequest({});
  dc.stopAdapter();
  console.log(JSON.stringify(seen));
}

runClient(main);
