// Drives `goat dap` with VS Code's own DAP test client: attach to a
// running program, a breakpoint by source line, the stop, every thread,
// the stack, the scopes, variables and an evaluation, then disconnect.
// Prints one JSON line of what it saw; tests/dap.rs checks it.
// Usage: node attach.js GOAT PID FILE LINE
'use strict';
const { attached, runClient } = require('./attached');

async function main() {
  const [goat, pid, file, line] = process.argv.slice(2);
  const dc = await attached(goat, pid);
  const seen = {};
  const bps = await dc.setBreakpointsRequest({
    source: { path: file },
    breakpoints: [{ line: Number(line) }],
  });
  seen.verified = bps.body.breakpoints.map((b) => b.verified);
  const stopped = dc.waitForEvent('stopped');
  // configurationDone implies no run, so the adapter says that it ran.
  const continued = dc.waitForEvent('continued');
  await dc.configurationDoneRequest();
  seen.continuedEvent = (await continued).body.allThreadsContinued;
  const stop = (await stopped).body;
  seen.reason = stop.reason;
  seen.threadId = stop.threadId;
  const threads = (await dc.threadsRequest()).body.threads;
  seen.threads = threads.length;
  seen.threadNames = threads.slice(0, 5).map((t) => t.name);
  seen.stoppedListed = threads.some((t) => t.id === stop.threadId);
  const st = (await dc.stackTraceRequest({ threadId: stop.threadId, startFrame: 0, levels: 5 })).body;
  seen.top = st.stackFrames[0] && {
    name: st.stackFrames[0].name,
    path: st.stackFrames[0].source.path,
    line: st.stackFrames[0].line,
  };
  seen.totalFrames = st.totalFrames;
  const scopes = (await dc.scopesRequest({ frameId: st.stackFrames[0].id })).body.scopes;
  seen.scopes = scopes.map((s) => s.name);
  const args = (await dc.variablesRequest({ variablesReference: scopes[0].variablesReference })).body.variables;
  seen.args = args.map((v) => `${v.name}=${v.value}`);
  const ev = (await dc.evaluateRequest({ expression: 'n + 1', frameId: st.stackFrames[0].id, context: 'watch' })).body;
  seen.evaluated = ev.result;
  // next: the line after, on the same goroutine.
  let again = dc.waitForEvent('stopped');
  await dc.nextRequest({ threadId: stop.threadId });
  let after = (await again).body;
  let top = (await dc.stackTraceRequest({ threadId: after.threadId, levels: 1 })).body.stackFrames[0];
  seen.next = { reason: after.reason, threadId: after.threadId, name: top.name, line: top.line };
  // stepOut: back in the caller.
  again = dc.waitForEvent('stopped');
  await dc.stepOutRequest({ threadId: stop.threadId });
  after = (await again).body;
  top = (await dc.stackTraceRequest({ threadId: after.threadId, levels: 1 })).body.stackFrames[0];
  seen.stepOut = { reason: after.reason, name: top.name };
  // continue: the breakpoint again.
  again = dc.waitForEvent('stopped');
  await dc.continueRequest({ threadId: stop.threadId });
  after = (await again).body;
  top = (await dc.stackTraceRequest({ threadId: after.threadId, levels: 1 })).body.stackFrames[0];
  seen.continued = { reason: after.reason, name: top.name, line: top.line };
  const bad = await dc.customRequest('noSuchRequest').then(() => 'answered', (e) => `error: ${e.message}`);
  seen.unknown = bad;
  await dc.disconnectRequest({});
  seen.disconnected = true;
  dc.stopAdapter();
  console.log(JSON.stringify(seen));
}

runClient(main);
