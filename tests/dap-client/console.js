// The Debug Console under `goat dap`: `evaluate` in the `repl` context
// runs goat's commands (bare, or after `goat `/`dlv ` as Delve's console
// takes them) in the frame the editor shows, and evaluates expressions;
// a command that runs the program is refused. On the `vars` fixture,
// paused, in main.hold's frame. Prints one JSON line; tests/dap.rs
// checks it.
// Usage: node console.js GOAT PID
'use strict';
const { attached, pausedIn, runClient } = require('./attached');

async function main() {
  const [goat, pid] = process.argv.slice(2);
  const dc = await attached(goat, pid);
  const { frame: f } = await pausedIn(dc, 'main.hold');
  const run = (expression) =>
    dc
      .evaluateRequest({ expression, frameId: f.id, context: 'repl' })
      .then((r) => r.body.result, (e) => `error: ${e.message}`);
  const seen = {};
  for (const line of ['goroutines', 'print in.Name', 'locals', 'dlv args', 'goat stack 3', 'counter', 'flag', 'continue', 'nosuchcommand']) {
    seen[line] = await run(line);
  }
  await dc.disconnectRequest({});
  dc.stopAdapter();
  console.log(JSON.stringify(seen));
}

runClient(main);
