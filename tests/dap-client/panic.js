// An unrecovered panic under `goat dap`: attach to runctl (mode `panic`),
// let it run, arm it with SIGUSR1, and the stop that follows is an
// exception on the goroutine that panicked, whose exceptionInfo is the
// panic's value. Prints one JSON line;
// tests/dap.rs checks it.
// With `none`, the exception filters are all turned off first: no stop,
// and the session ends with the program.
// Usage: node panic.js GOAT PID [none]
'use strict';
const { attached, runClient } = require('./attached');

async function main() {
  const [goat, pid, filters] = process.argv.slice(2);
  const dc = await attached(goat, pid);
  if (filters === 'none') {
    // The editor's exception filters all off: the panic is no stop, and
    // the program dies of it.
    await dc.setExceptionBreakpointsRequest({ filters: [] });
    const terminated = dc.waitForEvent('terminated');
    await dc.configurationDoneRequest();
    process.kill(Number(pid), 'SIGUSR1');
    await terminated;
    dc.stopAdapter();
    console.log(JSON.stringify({ terminated: true }));
    return;
  }
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

runClient(main);
