// Breakpoints set and cleared while the program runs under `goat dap`, as
// an editor sends them whenever a line is clicked: a function breakpoint
// that is never hit set and cleared with no stop reported, then a line the
// program runs every 10 ms set while it runs and hit. Then the line is
// cleared, the program paused, and goat's own `breakpoints` listing read
// in the Debug Console. Prints one JSON line; tests/dap.rs checks it.
// Usage: node edits.js GOAT PID FILE LINE
'use strict';
const { attached, runClient } = require('./attached');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const [goat, pid, file, line] = process.argv.slice(2);
  const dc = await attached(goat, pid);
  const stops = [];
  dc.on('stopped', (e) => stops.push(e.body.reason));
  await dc.configurationDoneRequest();
  await sleep(300);
  const seen = {};
  const never = await dc.setFunctionBreakpointsRequest({ breakpoints: [{ name: 'main.never' }] });
  seen.never = never.body.breakpoints.map((b) => b.verified);
  await sleep(300);
  seen.stopsWhileNever = stops.length;
  const cleared = await dc.setFunctionBreakpointsRequest({ breakpoints: [] });
  seen.cleared = cleared.body.breakpoints.length;
  const stopped = dc.waitForEvent('stopped');
  const set = await dc.setBreakpointsRequest({
    source: { path: file },
    breakpoints: [{ line: Number(line) }],
  });
  seen.line = set.body.breakpoints.map((b) => b.verified);
  seen.lineId = set.body.breakpoints[0].id;
  const stop = (await stopped).body;
  const frames = (await dc.stackTraceRequest({ threadId: stop.threadId, levels: 1 })).body.stackFrames;
  seen.hit = {
    reason: stop.reason,
    ids: stop.hitBreakpointIds || [],
    name: frames[0].name,
    line: frames[0].line,
  };
  await dc.setBreakpointsRequest({ source: { path: file }, breakpoints: [] });
  await dc.continueRequest({ threadId: stop.threadId });
  await sleep(300);
  const paused = dc.waitForEvent('stopped');
  await dc.pauseRequest({ threadId: 1 });
  seen.paused = (await paused).body.reason;
  const listed = await dc.evaluateRequest({ expression: 'breakpoints', context: 'repl' });
  seen.listed = listed.body.result;
  seen.stops = stops;
  await dc.disconnectRequest({});
  dc.stopAdapter();
  console.log(JSON.stringify(seen));
}

runClient(main);
