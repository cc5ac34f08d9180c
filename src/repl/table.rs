//! The one command table: names, aliases, groups, help and handlers. `help`
//! and completion are generated from it.

use std::io::Write;

use anyhow::{bail, Result};

use super::{
    bpcmds, call, config, data, deferred, disasm, display, exec, general, goroutines, grlist, heap,
    info, script, set, source, stack, stepi, vars, watch, why,
};
use crate::session::Session;

/// A command's handler: the session, the words after the command name, and
/// where to print.
pub type Handler = fn(&mut Session, &[&str], &mut dyn Write) -> Result<()>;

/// Groups, in the order `help` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Goroutines,
    Stack,
    Source,
    Data,
    Running,
    Session,
}

impl Group {
    const ALL: [Group; 6] = [
        Group::Running,
        Group::Goroutines,
        Group::Stack,
        Group::Source,
        Group::Data,
        Group::Session,
    ];

    fn title(self) -> &'static str {
        match self {
            Group::Goroutines => "Goroutines and threads",
            Group::Stack => "Stack frames",
            Group::Source => "Source",
            Group::Data => "Viewing data",
            Group::Running => "Running the program",
            Group::Session => "Session",
        }
    }
}

/// What Tab completes after the command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    None,
    Goroutine,
    Thread,
    Command,
    /// A function name or `FILE:` (then a line number).
    Location,
}

pub struct Command {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub group: Group,
    /// One line, for the `help` listing.
    pub help: &'static str,
    /// The synopsis and any details, for `help NAME`.
    pub usage: &'static str,
    pub arg: Arg,
    pub run: Handler,
}

/// Every command, in `help` order within each group.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "break",
        aliases: &["b"],
        group: Group::Running,
        help: "Set a breakpoint.",
        usage: "break [NAME] [LOCATION] [if COND]   (short: b)\n\n\
            LOCATION is FUNC (main.tick, main.(*T).M: after its prologue, and at\n\
            every copy the compiler inlined), FILE:LINE (a base name or path\n\
            suffix), LINE (in the selected frame's file), +N / -N (lines from the\n\
            selected frame's) or *ADDR (hex); none: the selected frame's line.\n\
            NAME (a letter, then letters, digits, _ or -) can stand for the id in\n\
            clear, cond, on and toggle. `if COND` sets a condition (see cond).\n\
            The int3 is in the program only while it runs.",
        arg: Arg::Location,
        run: bpcmds::breakpoint,
    },
    Command {
        name: "trace",
        aliases: &["t"],
        group: Group::Running,
        help: "Set a tracepoint: print each hit and go on.",
        usage: "trace [NAME] [LOCATION] [-stack N] [if COND]   (short: t)\n\n\
            At each hit (whose condition holds) print `> goroutine(G): FUNC(ARGS)`\n\
            with the arguments' values, and N frames of its stack with -stack N;\n\
            the program goes on without stopping. LOCATION as break takes it.",
        arg: Arg::Location,
        run: bpcmds::tracepoint,
    },
    Command {
        name: "breakpoints",
        aliases: &["bp"],
        group: Group::Running,
        help: "List the breakpoints, with hit counts per goroutine.",
        usage: "breakpoints   (short: bp)\n\n\
            Includes unrecovered-panic (-1) and runtime-fatal-throw (-2), which goat\n\
            sets at attach so that a dying program stops while its goroutines are\n\
            there (clear them like any other).",
        arg: Arg::None,
        run: bpcmds::breakpoints,
    },
    Command {
        name: "clear",
        aliases: &[],
        group: Group::Running,
        help: "Delete a breakpoint.",
        usage: "clear N | NAME",
        arg: Arg::None,
        run: bpcmds::clear,
    },
    Command {
        name: "clearall",
        aliases: &[],
        group: Group::Running,
        help: "Delete every breakpoint, or those at a location.",
        usage: "clearall [LOCATION]",
        arg: Arg::Location,
        run: bpcmds::clearall,
    },
    Command {
        name: "watch",
        aliases: &[],
        group: Group::Running,
        help: "Stop when a variable is written (or read) by any goroutine.",
        usage: "watch [-w|-r|-rw] EXPR\n\n\
            EXPR is a variable in memory, as print takes it (main.counter, p.field,\n\
            a local), of 1, 2, 4 or 8 bytes aligned to its size. -w (the default)\n\
            stops after a write; -r and -rw after a read or a write (x86 cannot\n\
            trap reads alone). The stop shows the goroutine and the line that made\n\
            the access, and the old and new value. Four watchpoints at most (the\n\
            debug registers DR0-DR3, set on every thread). A local's watchpoint is\n\
            cleared, with a message, when its frame returns. Listed by breakpoints,\n\
            removed by clear N.",
        arg: Arg::None,
        run: watch::watch,
    },
    Command {
        name: "condition",
        aliases: &["cond"],
        group: Group::Running,
        help: "Make a breakpoint stop only when a condition holds.",
        usage: "condition BP EXPR   (short: cond; BP is an id or a name)\n\
            condition -hitcount BP OP K\n\
            condition -per-g-hitcount BP OP K\n\
            condition -clear BP\n\n\
            EXPR is any boolean expression print evaluates (n >= 3 && req.Path ==\n\
            \"/a\" || ok), in the frame that hit; `goroutine OP N` compares the id\n\
            of the goroutine that hit. A false condition is no hit. -hitcount stops\n\
            only when the hit count (per goroutine with -per-g-hitcount) compares\n\
            so with K, OP one of == != < <= > >= % (% K: every K-th hit).\n\
            `condition BP` alone removes the expression; -clear removes both.",
        arg: Arg::None,
        run: bpcmds::condition,
    },
    Command {
        name: "on",
        aliases: &[],
        group: Group::Running,
        help: "Run a command at each hit of a breakpoint.",
        usage: "on BP COMMAND\n\n\
            COMMAND is one of print EXPR, stack [N], goroutine, args, locals,\n\
            display, frame N COMMAND; `on BP trace` makes BP a tracepoint and\n\
            `on BP cond ...` is `cond BP ...`. The commands are listed by\n\
            breakpoints and go with the breakpoint.",
        arg: Arg::None,
        run: bpcmds::on,
    },
    Command {
        name: "toggle",
        aliases: &[],
        group: Group::Running,
        help: "Disable a breakpoint, or enable it again.",
        usage: "toggle BP\n\n\
            A disabled breakpoint keeps its id, name, condition and hit counts,\n\
            and has no int3 in the program.",
        arg: Arg::None,
        run: bpcmds::toggle,
    },
    Command {
        name: "continue",
        aliases: &["c"],
        group: Group::Running,
        help: "Run until a breakpoint or Ctrl-C.",
        usage: "continue [LOCATION]   (short: c)\n\n\
            Ctrl-C stops the program and returns to the prompt. With a LOCATION\n\
            (as break takes it), stop there too: a breakpoint for this run only.",
        arg: Arg::None,
        run: exec::cont,
    },
    Command {
        name: "call",
        aliases: &[],
        group: Group::Running,
        help: "Call a function of the program on the selected goroutine.",
        usage: "call [-unsafe] FUNC(ARGS)\n\n\
            Calls FUNC (a package function: main.f, os.WriteFile) through the Go\n\
            runtime's debugger-call protocol on the selected goroutine, which must\n\
            be running on a thread at a safe point (one stopped at a breakpoint in\n\
            its own code is); the runtime refuses otherwise (in the runtime, not at\n\
            a safe point) and goat says why. ARGS are expressions as print takes\n\
            them: numbers, strings (a literal is placed in memory the runtime\n\
            allocates), slices, pointers, structs, interfaces (a concrete value is\n\
            boxed into an interface{} parameter), package and local variables.\n\
            Prints the returned values, or the panic value of a call that panicked;\n\
            the goroutine's registers are then as they were.\n\
            Every goroutine runs while the call does, with breakpoints off: one that\n\
            another goroutine would hit is passed by (Delve stops there, with the\n\
            call half made until the next continue). Ctrl-C does not stop a call; goat killed\n\
            during one leaves the call to finish and the program running.\n\
            -unsafe: pass pointers into goroutine stacks too, which goat refuses\n\
            by default (as Delve does: the function could keep them).",
        arg: Arg::None,
        run: call::call,
    },
    Command {
        name: "next",
        aliases: &["n"],
        group: Group::Running,
        help: "Run the current goroutine to the next line, over calls.",
        usage: "next [N]   (short: n)\n\n\
            N lines (default 1; a breakpoint hit ends it sooner).\n\
            Follows the current goroutine (whatever thread runs it) and its frame\n\
            (not a recursive call's); stops at a return into the caller too.",
        arg: Arg::None,
        run: exec::next,
    },
    Command {
        name: "step",
        aliases: &["s"],
        group: Group::Running,
        help: "Like next, but into functions the line calls.",
        usage: "step [N]   (short: s)\n\n\
            N lines (default 1; a breakpoint hit ends it sooner).\n\
            Stops after the prologue of a Go function the current line calls\n\
            directly (runtime internals and calls through a func value or an\n\
            interface are stepped over).",
        arg: Arg::None,
        run: exec::step,
    },
    Command {
        name: "stepout",
        aliases: &["so"],
        group: Group::Running,
        help: "Run until the current function returns to its caller.",
        usage: "stepout   (short: so)",
        arg: Arg::None,
        run: exec::stepout,
    },
    Command {
        name: "step-instruction",
        aliases: &["si", "stepi"],
        group: Group::Running,
        help: "Run one machine instruction of the selected goroutine's thread.",
        usage: "step-instruction   (short: si)\n\n\
            The other threads stay stopped; the goroutine must be running on a thread.",
        arg: Arg::None,
        run: stepi::step_instruction,
    },
    Command {
        name: "why",
        aliases: &[],
        group: Group::Goroutines,
        help: "Say what goroutines wait on, who may release them, deadlocks, and which never wake.",
        usage: "why [GOROUTINE]\n\n\
            Without an argument, `goat why`'s report of this stop: the findings (deadlock\n\
            cycles, goroutines that can never wake, goroutines waiting on one object and\n\
            who may release them), then each waiting goroutine. With a goroutine id, what\n\
            it waits on, who may release it, and the findings about it. Go records no\n\
            owner of a lock: \"may hold\" names goroutines that reference it.",
        arg: Arg::Goroutine,
        run: why::why,
    },
    Command {
        name: "heap",
        aliases: &[],
        group: Group::Data,
        help: "Say what holds the memory: types, roots by retained size, how an object is reached.",
        usage: "heap [path|retained ADDRESS|EXPR]\n\n\
            Without an argument, `goat heap`'s report of this stop: live objects by type,\n\
            the roots that retain the most (what would be freed without them) and how the\n\
            biggest types are reached. `heap path` prints the shortest chain of references\n\
            from a root to the object at ADDRESS, or that EXPR points at; `heap retained`\n\
            what that object keeps alive.",
        arg: Arg::None,
        run: heap::heap,
    },
    Command {
        name: "goroutines",
        aliases: &["grs"],
        group: Group::Goroutines,
        help: "List the goroutines.",
        usage: "goroutines [-u|-r|-g|-s] [-t [DEPTH]] [-l] [-with|-without WHAT [EXPR]]\n\
            \x20          [-group KEY] [-chan EXPR] [-f FUNC] [-status STATUS]\n\
            \x20          [-label KEY[=VALUE]] [-n N | -all] [-exec COMMAND]\n\n\
            Which location each line shows: -u the innermost frame outside the\n\
            runtime, standard library inlined into the user's code counting as\n\
            the user's (default), -r the innermost frame, -g the go statement\n\
            that created it, -s its start function (the outermost frame read).\n\
            -t [DEPTH]    each goroutine's stack too (10 frames unless DEPTH)\n\
            -l            each goroutine's pprof labels too (pprof.Do, SetGoroutineLabels)\n\
            -with|-w, -without|-wo (userloc|curloc|goloc|startloc) EXPR\n\
            \x20             keep goroutines whose location (function, file:line)\n\
            \x20             contains EXPR, or does not\n\
            -with|-without label KEY[=VALUE]   has (or not) label KEY (with VALUE)\n\
            -with|-without running|user   on an OS thread; not started in the runtime\n\
            -group (userloc|curloc|goloc|startloc|running|user|label KEY)\n\
            \x20             by that key: 5 goroutines of each group and its total\n\
            -group        (no key) collapse identical stacks, runtime layout\n\
            -f FUNC       only goroutines with a frame whose function contains FUNC\n\
            -status S     only goroutines whose status contains S (-status \"chan receive\")\n\
            -label KV     the same as -with label KV\n\
            -chan EXPR    only goroutines waiting to receive from or send to the\n\
            \x20             channel EXPR (evaluated in the selected frame, as print does)\n\
            -exec COMMAND run COMMAND (the rest of the line) on each goroutine listed\n\
            -n N          list the first N goroutines (or groups)\n\
            -all          list every goroutine (or group)\n\n\
            Without -n or -all one screen is listed (100 lines when the output is\n\
            not a terminal), then how many more there are; the last line counts\n\
            every goroutine the filters kept. Stacks are read only for the lines\n\
            shown, unless a filter or the grouping looks at locations or frames.\n\
            The current goroutine is marked with '*'.",
        arg: Arg::None,
        run: grlist::goroutines,
    },
    Command {
        name: "goroutine",
        aliases: &["gr"],
        group: Group::Goroutines,
        help: "Show or change the current goroutine.",
        usage: "goroutine [ID [COMMAND]]\n\n\
            Without ID, describe the current goroutine. With ID, make it current;\n\
            with a COMMAND too, run COMMAND on goroutine ID and keep the current one.\n\
            The description includes the goroutine's pprof labels, if it has any.",
        arg: Arg::Goroutine,
        run: goroutines::goroutine,
    },
    Command {
        name: "threads",
        aliases: &[],
        group: Group::Goroutines,
        help: "List the threads: where each is and which goroutine it runs.",
        usage: "threads\n\nThe thread running the current goroutine is marked with '*'.",
        arg: Arg::None,
        run: goroutines::threads,
    },
    Command {
        name: "thread",
        aliases: &["tr"],
        group: Group::Goroutines,
        help: "Switch to the goroutine running on a thread.",
        usage: "thread TID",
        arg: Arg::Thread,
        run: goroutines::thread,
    },
    Command {
        name: "stack",
        aliases: &["bt"],
        group: Group::Stack,
        help: "Print the current goroutine's stack.",
        usage: "stack [DEPTH] [-full] [-defer] [-offsets]\n\n\
            At most DEPTH frames, innermost first. -full prints each frame's\n\
            arguments and locals under it, as args and locals do.\n\
            -defer        each frame's pending deferred calls (defer N: the function\n\
            \x20             called and where, and the defer statement); defers the\n\
            \x20             compiler open-coded (no loop, at most 8) have no record\n\
            -offsets      each frame's CFA and frame pointer, as offsets from the\n\
            \x20             top of the goroutine's stack (Delve's frame: / frame pointer)",
        arg: Arg::None,
        run: stack::stack,
    },
    Command {
        name: "frame",
        aliases: &[],
        group: Group::Stack,
        help: "Select a frame of the current goroutine, or run a command in one.",
        usage: "frame [N [COMMAND]]\n\n\
            Without N, show the selected frame. With a COMMAND (frame 4 list,\n\
            frame 2 p x), run COMMAND in frame N and keep the selection.",
        arg: Arg::None,
        run: stack::frame,
    },
    Command {
        name: "up",
        aliases: &[],
        group: Group::Stack,
        help: "Move to an outer frame (the caller).",
        usage: "up [N] [COMMAND]\n\n\
            N frames towards the caller (default 1); with a COMMAND (up 2 locals),\n\
            run it there and keep the selection.",
        arg: Arg::None,
        run: stack::up,
    },
    Command {
        name: "down",
        aliases: &[],
        group: Group::Stack,
        help: "Move to an inner frame (the callee).",
        usage: "down [N] [COMMAND]\n\n\
            N frames towards the callee (default 1); with a COMMAND, run it there\n\
            and keep the selection.",
        arg: Arg::None,
        run: stack::down,
    },
    Command {
        name: "deferred",
        aliases: &[],
        group: Group::Stack,
        help: "Show the deferred calls pending in the selected frame.",
        usage: "deferred [N]\n\n\
            Without N, the selected frame's deferred calls, numbered from 1 as\n\
            stack -defer numbers them; with N, that call, its closure and its\n\
            record. Only defers with a runtime record are seen (not those the\n\
            compiler open-coded). Delve's `deferred N print|args|locals` is not\n\
            available: since Go 1.18 the call's arguments are inside its closure.",
        arg: Arg::None,
        run: deferred::deferred,
    },
    Command {
        name: "list",
        aliases: &["ls", "l"],
        group: Group::Source,
        help: "Show source around the selected frame or a location.",
        usage: "list [LOCATION]\n\n\
            LOCATION is LINE (in the selected frame's file), +N or -N (lines\n\
            after or before the frame's), FILE:LINE, FUNC, FUNC:LINE (line LINE\n\
            of FUNC's file), *ADDR (that address's line) or /REGEX/ (the one\n\
            function matching). `config source-list-line-count`\n\
            lines either side are shown (5); `config substitute-path` maps the\n\
            build machine's directories to this one's.",
        arg: Arg::Location,
        run: source::list,
    },
    Command {
        name: "funcs",
        aliases: &[],
        group: Group::Source,
        help: "List the functions of the binary.",
        usage: "funcs [REGEX]\n\n\
            Only those matching REGEX (. [] * + ? ^ $ | and \\ escapes; no groups).",
        arg: Arg::None,
        run: info::funcs,
    },
    Command {
        name: "sources",
        aliases: &[],
        group: Group::Source,
        help: "List the source files of the binary's functions.",
        usage: "sources [REGEX]",
        arg: Arg::None,
        run: info::sources,
    },
    Command {
        name: "types",
        aliases: &[],
        group: Group::Source,
        help: "List the types of the binary (from DWARF).",
        usage: "types [REGEX]",
        arg: Arg::None,
        run: info::types,
    },
    Command {
        name: "edit",
        aliases: &["ed"],
        group: Group::Source,
        help: "Open $DELVE_EDITOR or $EDITOR at the selected frame's line.",
        usage: "edit [LOCATION]\n\n\
            Runs the editor with +LINE FILE; only when stdin and stdout are a\n\
            terminal. LOCATION as list takes it.",
        arg: Arg::Location,
        run: script::edit,
    },
    Command {
        name: "disassemble",
        aliases: &["disass"],
        group: Group::Source,
        help: "Disassemble the selected frame's function (or FUNC, or a range).",
        usage: "disassemble [-a START END | FUNC]\n\n\
            Intel syntax, read from the target's memory; '=>' marks the selected\n\
            frame's instruction (for a caller, its call). Calls and jumps name\n\
            their target.",
        arg: Arg::Location,
        run: disasm::disassemble,
    },
    Command {
        name: "regs",
        aliases: &[],
        group: Group::Data,
        help: "Print the registers of the current goroutine.",
        usage: "regs\n\n\
            The registers of the thread running the current goroutine; for a\n\
            parked goroutine, the pc and sp it will resume at.",
        arg: Arg::None,
        run: data::regs,
    },
    Command {
        name: "examinemem",
        aliases: &["x"],
        group: Group::Data,
        help: "Print raw memory at an address, in hex and ASCII.",
        usage: "examinemem ADDR [N]   (short: x ADDR [N])\n\
            examinemem [-count|-len N] [-size 1] [-fmt hex] [-x] ADDR\n\n\
            N bytes (default 64, at most 4096) from ADDR, 16 a line. ADDR is\n\
            a number (hex with 0x, or decimal) or an expression: &VAR (the\n\
            variable itself), a pointer (what it points at), a slice or a\n\
            string (its bytes). Unreadable memory is an error. Delve's flags\n\
            are taken for bytes in hex only (other -size and -fmt are not\n\
            supported yet).",
        arg: Arg::None,
        run: data::examine,
    },
    Command {
        name: "args",
        aliases: &[],
        group: Group::Data,
        help: "Print the arguments of the selected frame.",
        usage: "args [-v] [REGEX]\n\n\
            One `name = value` a line, from DWARF. A value the optimizer did not\n\
            keep at this pc is shown as optimized out or unavailable. REGEX keeps\n\
            the names it matches; -v puts each struct field on a line of its own.",
        arg: Arg::None,
        run: vars::args,
    },
    Command {
        name: "locals",
        aliases: &[],
        group: Group::Data,
        help: "Print the local variables of the selected frame.",
        usage: "locals [-v] [REGEX]\n\n\
            The variables in scope at the frame's pc, one `name = value` a line.\n\
            REGEX keeps the names it matches; -v puts each struct field on a line\n\
            of its own.",
        arg: Arg::None,
        run: vars::locals,
    },
    Command {
        name: "vars",
        aliases: &[],
        group: Group::Data,
        help: "Print package variables and their values.",
        usage: "vars [REGEX]\n\n\
            Every package variable DWARF describes (only those whose full name\n\
            matches REGEX), printed as print prints it.",
        arg: Arg::None,
        run: info::vars,
    },
    Command {
        name: "libraries",
        aliases: &[],
        group: Group::Data,
        help: "List the shared libraries mapped into the program.",
        usage: "libraries",
        arg: Arg::None,
        run: info::libraries,
    },
    Command {
        name: "print",
        aliases: &["p"],
        group: Group::Data,
        help: "Evaluate and print a Go expression.",
        usage: "print [%x|%X|%o|%b|%d|%s|%v|%q] EXPR   (short: p)\n\n\
            EXPR is Go: variables of the selected frame and package variables\n\
            (counter, main.counter, \"pkg/path\".v), .field (through pointers,\n\
            interfaces and embedded structs: c.fd for c.conn.fd; a channel's\n\
            are its runtime.hchan's: ch.qcount, ch.sendq), a[i], m[key],\n\
            s[lo:hi], *p, &v, x.(T), T(x), (*T)(0xADDR), len, cap, unary - ! ^\n\
            and Go's binary operators, literals and nil; runtime.curg is the\n\
            selected goroutine's g (runtime.curg.goid).\n\
            A %VERB prints integers (and their slices) in that base.\n\
            An expression has at most 1024 tokens and 100 levels of parentheses\n\
            and unary operators: longer ones are refused, never a crash.",
        arg: Arg::None,
        run: vars::print,
    },
    Command {
        name: "set",
        aliases: &[],
        group: Group::Data,
        help: "Change a variable of the live program.",
        usage: "set EXPR = VALUE\n\n\
            EXPR is a variable in memory, as print takes it. Integers (checked\n\
            against the variable's range), floats and bools take a constant or a\n\
            variable of that kind; a pointer takes nil, an address, &v or a\n\
            pointer of the same type; a string or slice takes another value of\n\
            the same type (its header is copied; nil for a slice). Interfaces,\n\
            maps, channels, and variables held in registers by optimized code are\n\
            refused.",
        arg: Arg::None,
        run: set::set,
    },
    Command {
        name: "display",
        aliases: &[],
        group: Group::Data,
        help: "Print expressions every time the program stops.",
        usage: "display -a [%VERB] EXPR | display -d N | display\n\n\
            -a adds EXPR (as print takes it) to the list shown as `N: EXPR = VALUE`\n\
            after every stop; -d N removes number N; alone, shows them all now.",
        arg: Arg::None,
        run: display::display,
    },
    Command {
        name: "whatis",
        aliases: &[],
        group: Group::Data,
        help: "Print the type of an expression.",
        usage: "whatis EXPR\n\n\
            EXPR as for print, or a type name (main.Request, *main.Inner).",
        arg: Arg::None,
        run: vars::whatis,
    },
    Command {
        name: "dump-bytes",
        aliases: &[],
        group: Group::Data,
        help: "Write the bytes of a string, []byte or [N]byte to a file.",
        usage: "dump-bytes EXPR FILE [-f]\n\n\
            EXPR as for print. FILE is created with mode 0600; an existing regular\n\
            file is replaced (by a new 0600 file) only with -f. A symbolic link,\n\
            FIFO, device or directory at FILE is refused.",
        arg: Arg::None,
        run: vars::dump_bytes,
    },
    Command {
        name: "help",
        aliases: &["h"],
        group: Group::Session,
        help: "List the commands, or describe one.",
        usage: "help [COMMAND]",
        arg: Arg::Command,
        run: general::help,
    },
    Command {
        name: "detach",
        aliases: &[],
        group: Group::Session,
        help: "Detach and leave the target running.",
        usage: "detach",
        arg: Arg::None,
        run: general::quit,
    },
    Command {
        name: "core",
        aliases: &["gcore"],
        group: Group::Session,
        help: "Write an ELF core of the stopped target (gdb, dlv core, goat debug open it).",
        usage: "core [-f] [FILE]\n\n\
            Writes the stop you are looking at to FILE (default core.PID): 0600,\n\
            never over an existing file unless -f, never over a symbolic link,\n\
            FIFO, device or directory. The target stays stopped.",
        arg: Arg::None,
        run: general::core,
    },
    Command {
        name: "dump",
        aliases: &[],
        group: Group::Session,
        help: "Write an ELF core of the stopped target (Delve's name for core).",
        usage: "dump [-f] FILE\n\nThe same as core.",
        arg: Arg::None,
        run: info::dump,
    },
    Command {
        name: "source",
        aliases: &[],
        group: Group::Session,
        help: "Run the commands in a file.",
        usage: "source FILE\n\n\
            One command a line (# starts a comment); - reads them from stdin. A\n\
            failing command prints its error and the script goes on.",
        arg: Arg::None,
        run: script::source_cmd,
    },
    Command {
        name: "transcript",
        aliases: &[],
        group: Group::Session,
        help: "Append the commands' output to a file.",
        usage: "transcript [-t] [-x] FILE | transcript -off\n\n\
            -t truncates FILE first; -x leaves stdout out (the file only);\n\
            -off stops. FILE is created 0600; a symbolic link is refused.",
        arg: Arg::None,
        run: script::transcript,
    },
    Command {
        name: "config",
        aliases: &[],
        group: Group::Session,
        help: "Show or change the session's settings.",
        usage: "config -list | config -save | config SETTING VALUE\n\n\
            substitute-path FROM TO   list (and stops) read FROM/... as TO/...\n\
            substitute-path -clear [FROM]   remove every rule (or FROM's)\n\
            max-string-len N          string bytes print shows (100; Delve 64)\n\
            max-array-values N        elements and map entries shown (64)\n\
            max-variable-recurse N    nesting levels shown before {...} (3; Delve 1)\n\
            \x20                         (at most 1048576, 65536 and 16)\n\
            source-list-line-count N  lines list shows either side (5)\n\n\
            -save writes the settings to $XDG_CONFIG_HOME/goat/config (else\n\
            ~/.config/goat/config), which every session reads when it starts:\n\
            one setting a line, as config takes it; # starts a comment.",
        arg: Arg::None,
        run: config::config,
    },
    Command {
        name: "quit",
        aliases: &["exit", "q"],
        group: Group::Session,
        help: "Detach, leave the target running, and exit.",
        usage: "quit\n\nCtrl-D does the same.",
        arg: Arg::None,
        run: general::quit,
    },
];

/// The command called `word` (name or alias).
pub fn find(word: &str) -> Option<&'static Command> {
    COMMANDS
        .iter()
        .find(|c| c.name == word || c.aliases.contains(&word))
}

/// Runs one command line (empty lines do nothing).
pub fn execute(s: &mut Session, line: &str, out: &mut dyn Write) -> Result<()> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&first, rest)) = words.split_first() else {
        return Ok(());
    };
    let Some(cmd) = find(first) else {
        bail!("unknown command {first:?}; type 'help' for the list");
    };
    // The engine shows values within the limits `config` last set.
    s.limits = super::config::get().limits;
    (cmd.run)(s, rest, out)
}

/// The `help` listing.
pub fn write_overview(out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "The following commands are available:")?;
    for group in Group::ALL {
        writeln!(out, "\n{}:", group.title())?;
        for c in COMMANDS.iter().filter(|c| c.group == group) {
            let aliases = match c.aliases {
                [] => String::new(),
                [a] => format!(" (alias: {a})"),
                many => format!(" (aliases: {})", many.join(" | ")),
            };
            writeln!(out, "    {}{aliases} -- {}", c.name, c.help)?;
        }
    }
    writeln!(
        out,
        "\nType help followed by a command for full documentation."
    )
}

/// `help NAME`.
pub fn write_usage(out: &mut dyn Write, c: &Command) -> std::io::Result<()> {
    writeln!(out, "{}\n\nUsage: {}", c.help, c.usage)?;
    if !c.aliases.is_empty() {
        writeln!(out, "\nAliases: {}", c.aliases.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "cmdref.rs"]
mod cmdref;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique_and_resolve() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS {
            for w in std::iter::once(&c.name).chain(c.aliases) {
                assert!(seen.insert(*w), "{w} is used twice");
                assert_eq!(find(w).map(|f| f.name), Some(c.name));
            }
            assert!(c.usage.starts_with(c.name), "usage of {} names it", c.name);
        }
    }

    #[test]
    fn overview_lists_every_command_once_under_its_group() {
        let mut out = Vec::new();
        write_overview(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for c in COMMANDS {
            let line = format!("    {}", c.name);
            let hits = text
                .lines()
                .filter(|l| l.starts_with(&line) && l[line.len()..].starts_with([' ']))
                .count();
            assert_eq!(hits, 1, "{} in:\n{text}", c.name);
        }
    }
}
