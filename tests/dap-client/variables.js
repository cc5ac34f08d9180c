// Values in the editor's Variables pane: attach to the `vars` fixture,
// pause, pick the goroutine parked in main.hold, and read its scopes with
// one level of children (a struct, a map, a slice), and the package's
// variables (the Globals scope). Prints one JSON line,
// name → value, type and children; tests/dap.rs checks it.
// Usage: node variables.js GOAT PID
'use strict';
const { attached, pausedIn, runClient } = require('./attached');

async function main() {
  const [goat, pid] = process.argv.slice(2);
  const dc = await attached(goat, pid);
  const { thread: t, frame: f } = await pausedIn(dc, 'main.hold');
  const scopes = (await dc.scopesRequest({ frameId: f.id })).body.scopes;
  const seen = { thread: t.name, scopes: scopes.map((s) => s.name), vars: {} };
  for (const sc of scopes) {
    if (sc.presentationHint === 'globals') {
      // The package's variables: a name and a value each.
      const vars = (await dc.variablesRequest({ variablesReference: sc.variablesReference })).body.variables;
      seen.globals = Object.fromEntries(vars.map((v) => [v.name, v.value]));
      const small = vars.find((v) => v.name === 'gSmall');
      if (small && small.variablesReference > 0) {
        const kids = (await dc.variablesRequest({ variablesReference: small.variablesReference })).body.variables;
        seen.gSmall = kids.map((c) => `${c.name}=${c.value}`).sort();
      }
      continue;
    }
    const vars = (await dc.variablesRequest({ variablesReference: sc.variablesReference })).body.variables;
    for (const v of vars) {
      const entry = { value: v.value, type: v.type || null };
      if (v.variablesReference > 0) {
        const kids = (await dc.variablesRequest({ variablesReference: v.variablesReference })).body.variables;
        entry.children = kids.map((c) => `${c.name}=${c.value}`);
      }
      seen.vars[v.name] = entry;
    }
  }
  await dc.disconnectRequest({});
  dc.stopAdapter();
  console.log(JSON.stringify(seen));
}

runClient(main);
