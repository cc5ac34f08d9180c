// setVariable, readMemory, disassemble and loadedSources under
// `goat dap`, on the `vars` fixture paused in main.hold: a local bool and
// float, a struct's field, a package int and pointer written and read
// back; memory at the frame's pc, at an unmapped address and past the
// bound; the instructions around the frame's pc (against the console's
// `disassemble`); and the binary's source files. Prints one JSON line;
// tests/dap.rs checks it.
// Usage: node code.js GOAT PID
'use strict';
const { attached, pausedIn, runClient } = require('./attached');

const caught = (p) => p.then((r) => r.body, (e) => ({ error: e.message }));

async function main() {
  const [goat, pid] = process.argv.slice(2);
  const dc = await attached(goat, pid);
  // Asked again: the capabilities `attached` read and dropped.
  const caps = (await dc.initializeRequest()).body;
  const { frame: f } = await pausedIn(dc, 'main.hold');
  const scopes = (await dc.scopesRequest({ frameId: f.id })).body.scopes;
  const ref = (name) => scopes.find((s) => s.name.startsWith(name)).variablesReference;
  const seen = { caps };
  const set = (variablesReference, name, value) =>
    caught(dc.setVariableRequest({ variablesReference, name, value }));
  seen.flag = await set(ref('Locals'), 'flag', 'false');
  seen.ratio = await set(ref('Locals'), 'ratio', '3.5');
  seen.ratioBad = await set(ref('Locals'), 'ratio', '"text"');
  const args = (await dc.variablesRequest({ variablesReference: ref('Arguments') })).body.variables;
  const inner = args.find((v) => v.name === 'in');
  seen.count = await set(inner.variablesReference, 'Count', '9');
  seen.counter = await set(ref('Globals'), 'counter', '7');
  seen.gNilPtr = await set(ref('Globals'), 'gNilPtr', 'req');
  const ev = async (expression) =>
    (await caught(dc.evaluateRequest({ expression, frameId: f.id, context: 'watch' }))).result;
  seen.readBack = {
    flag: await ev('flag'),
    ratio: await ev('ratio'),
    count: await ev('in.Count'),
    counter: await ev('counter'),
    ptr: await ev('main.gNilPtr == req'),
  };
  const pc = f.instructionPointerReference;
  seen.pc = pc;
  const mem = await caught(dc.customRequest('readMemory', { memoryReference: pc, count: 64 }));
  seen.memory = { address: mem.address, bytes: Buffer.from(mem.data || '', 'base64').toString('hex'), unreadable: mem.unreadableBytes || 0 };
  const none = await caught(dc.customRequest('readMemory', { memoryReference: '0x10', count: 16 }));
  seen.unmapped = { bytes: Buffer.from(none.data || '', 'base64').length, unreadable: none.unreadableBytes || 0 };
  const huge = await caught(dc.customRequest('readMemory', { memoryReference: pc, count: 2 ** 40 }));
  seen.huge = { bytes: Buffer.from(huge.data || '', 'base64').length, unreadable: huge.unreadableBytes || 0 };
  const dis = await caught(
    dc.customRequest('disassemble', { memoryReference: pc, instructionOffset: -2, instructionCount: 5 }),
  );
  seen.instructions = dis.instructions;
  const console_ = await caught(dc.evaluateRequest({ expression: 'disassemble', frameId: f.id, context: 'repl' }));
  seen.marked = (console_.result || '').split('\n').filter((l) => l.startsWith('=>'));
  const sources = (await dc.customRequest('loadedSources', {})).body.sources;
  seen.sources = sources.map((s) => s.path).filter((p) => p.includes('fixtures/vars/') || p.endsWith('runtime/proc.go'));
  seen.sourceCount = sources.length;
  await dc.disconnectRequest({});
  dc.stopAdapter();
  console.log(JSON.stringify(seen));
}

runClient(main);
