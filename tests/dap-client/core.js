// A post-mortem through `launch` mode `core`: the stop, the threads, a
// stack, and `continue` refused. Prints one JSON line; tests/dap.rs checks it.
// Usage: node core.js GOAT PROGRAM CORE
'use strict';
const { runClient } = require('./attached');
const { DebugClient } = require('@vscode/debugadapter-testsupport');

async function main() {
  const [goat, program, core] = process.argv.slice(2);
  const dc = new DebugClient(goat, 'dap', 'go');
  dc.defaultTimeout = 20000;
  await dc.start();
  await dc.initializeRequest();
  const initialized = dc.waitForEvent('initialized');
  await dc.launchRequest({ mode: 'core', program, coreFilePath: core });
  await initialized;
  const stopped = dc.waitForEvent('stopped');
  await dc.configurationDoneRequest();
  const stop = (await stopped).body;
  const threads = (await dc.threadsRequest()).body.threads;
  const functions = [];
  for (const t of threads) {
    const st = (await dc.stackTraceRequest({ threadId: t.id, levels: 20 })).body.stackFrames;
    functions.push(...st.map((f) => f.name));
  }
  const cont = await dc.continueRequest({ threadId: stop.threadId }).then(
    () => 'continued',
    (e) => `error: ${e.message}`,
  );
  await dc.disconnectRequest({});
  dc.stopAdapter();
  console.log(JSON.stringify({
    reason: stop.reason,
    threads: threads.length,
    functions: [...new Set(functions)],
    continue: cont,
  }));
}

runClient(main);
