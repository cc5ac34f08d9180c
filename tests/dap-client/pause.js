// `pause` under `goat dap`: attach to a program, let it run with no
// breakpoint, and pause it: a `stopped` event with reason `pause`, and
// the paused program's goroutines and stacks can be read. Then continue,
// pause again, and disconnect. Prints one JSON line; tests/dap.rs checks it.
// Usage: node pause.js GOAT PID
'use strict';
const { attached, runClient } = require('./attached');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function pauseOnce(dc, seen) {
  const stopped = dc.waitForEvent('stopped');
  await dc.pauseRequest({ threadId: 1 });
  const stop = (await stopped).body;
  const threads = (await dc.threadsRequest()).body.threads;
  const frames = (await dc.stackTraceRequest({ threadId: threads[0].id, levels: 5 })).body.stackFrames;
  seen.push({ reason: stop.reason, threads: threads.length, top: frames.length > 0 });
}

async function main() {
  const [goat, pid] = process.argv.slice(2);
  const dc = await attached(goat, pid);
  await dc.configurationDoneRequest();
  const seen = [];
  await sleep(300);
  await pauseOnce(dc, seen);
  await dc.continueRequest({ threadId: 1 });
  await sleep(300);
  await pauseOnce(dc, seen);
  await dc.disconnectRequest({});
  dc.stopAdapter();
  console.log(JSON.stringify({ pauses: seen }));
}

runClient(main);
