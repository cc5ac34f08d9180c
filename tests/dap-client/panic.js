// An unrecovered panic under `goat dap`: attach to runctl (mode `panic`),
// let it run, arm it with SIGUSR1, and the stop that follows is an
// exception on the goroutine that panicked, whose exceptionInfo is the
// panic's value. Prints one JSON line;
// tests/dap.rs checks it.
// Usage: node panic.js GOAT PID
'use strict';
const { attached } = require('./attached');

async function main() {
  const [goat, pid] = process.argv.slice(2);
  const dc = await attached(goat, pid);
  const stopped = dc.waitForEvent('stopped');
  await dc.configurationDoneRequest();
  process.kill(Number(pid), 'SIGUSR1');
  const stop = (await stopped).body;
  const frames = (await dc.stackTraceRequest({ threadId: stop.threadId, levels: 20 })).body.stackFrames;
  const info = (await dc.customRequest('exceptionInfo', { threadId: stop.threadId })).body;
  await dc.disconnectRequest({});
  dc.stopAdapter();
  console.log(JSON.stringify({
    reason: stop.reason,
    description: stop.description || null,
    text: stop.text || null,
    threadId: stop.threadId,
    functions: frames.map((f) => f.name),
    exceptionId: info.exceptionId,
    exceptionDescription: info.description,
  }));
}

main().catch((e) => {
  console.error(`dap client: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
