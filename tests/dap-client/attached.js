// What every attaching client here does first: start `goat dap` under VS
// Code's DAP test client, initialize, and attach to a running process.
'use strict';
const { DebugClient } = require('@vscode/debugadapter-testsupport');

// The client, attached to PID and initialized; `options` go to the
// DebugClient (e.g. `{ detached: true }`), `timeout` is each request's.
async function attached(goat, pid, options = {}, timeout = 20000) {
  const dc = new DebugClient(goat, 'dap', 'go', options);
  dc.defaultTimeout = timeout;
  await dc.start();
  await dc.initializeRequest();
  const initialized = dc.waitForEvent('initialized');
  await dc.attachRequest({ mode: 'local', processId: Number(pid) });
  await initialized;
  return dc;
}

// Runs the program (configurationDone), pauses it, and finds the
// goroutine whose top user function is `func` and that function's frame.
async function pausedIn(dc, func) {
  await dc.configurationDoneRequest();
  const stopped = dc.waitForEvent('stopped');
  await dc.pauseRequest({ threadId: 1 });
  await stopped;
  const threads = (await dc.threadsRequest()).body.threads;
  const thread = threads.find((t) => t.name.endsWith(func));
  const frames = (await dc.stackTraceRequest({ threadId: thread.id, levels: 20 })).body.stackFrames;
  const frame = frames.find((f) => f.name === func);
  return { thread, frame };
}

module.exports = { attached, pausedIn };
