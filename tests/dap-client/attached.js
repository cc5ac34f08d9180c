// What the clients here share: `goat dap` started under VS Code's DAP test
// client and attached to a running process, a paused frame found, and
// each client's main run with its errors shown.
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

// Runs a client's `main`; its error goes to stderr with a non-zero exit,
// which tests/dap.rs shows.
function runClient(main) {
  main().catch((e) => {
    console.error(`dap client: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  });
}

module.exports = { attached, pausedIn, runClient };
