//! `goroutines`: the list, with Delve's flags (which location each line
//! shows, stacks, labels, filters, grouping, the waiters of a channel, a
//! command run on each) and goat's own `-f FUNC`, `-status STATUS` and
//! `-label KEY[=VALUE]` filters.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};

use crate::goruntime::{Frame, Goroutine};
use crate::repl::base_name;
use crate::repl::goroutines::{quoted_words, user_frame};
use crate::repl::grpage;
use crate::repl::labels::{self, Labels};
use crate::repl::stack::write_frames;
use crate::report;
use crate::session::Session;

/// Delve's default stack depth for `-t`.
const DEFAULT_DEPTH: usize = 10;
/// Goroutines shown per group (Delve shows 5 and the total).
const PER_GROUP: usize = 5;
/// Up to this many lines, the goroutines listed have their stacks read one
/// by one; past it, every stack at once (`-all`, `-n 50000`).
const ONE_BY_ONE_MAX: usize = 1000;

/// Which of a goroutine's locations a line shows, a filter tests or a
/// group is keyed by (Delve's -u -r -g -s; userloc curloc goloc startloc).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loc {
    User,
    Current,
    Go,
    Start,
}

impl Loc {
    fn from_key(key: &str) -> Option<Loc> {
        Some(match key {
            "userloc" => Loc::User,
            "curloc" => Loc::Current,
            "goloc" => Loc::Go,
            "startloc" => Loc::Start,
            _ => return None,
        })
    }

    /// `FUNC (FILE:LINE)`, or why there is none.
    fn of(self, g: &Goroutine) -> String {
        let at = |f: &str, file: &str, line: u32| format!("{f} ({}:{line})", base_name(file));
        let frame = match self {
            Loc::User => user_frame(g),
            Loc::Current => g.frames.first(),
            Loc::Start => start_frame(g),
            Loc::Go => {
                return match &g.created_by {
                    Some(c) => at(&c.function, &c.file, c.line),
                    None => "(not created by a go statement)".into(),
                }
            }
        };
        frame.map_or("(no frames)".into(), |f| at(&f.function, &f.file, f.line))
    }

    /// What a substring filter is matched against: the full path too.
    fn text(self, g: &Goroutine) -> String {
        let full = |f: &str, file: &str, line: u32| format!("{f} {file}:{line}");
        match self {
            Loc::Go => g
                .created_by
                .as_ref()
                .map_or(String::new(), |c| full(&c.function, &c.file, c.line)),
            other => {
                let f = match other {
                    Loc::User => user_frame(g),
                    Loc::Current => g.frames.first(),
                    _ => start_frame(g),
                };
                f.map_or(String::new(), |f| full(&f.function, &f.file, f.line))
            }
        }
    }

    fn label(self) -> &'static str {
        match self {
            Loc::User => "",
            Loc::Current => "Runtime: ",
            Loc::Go => "Go: ",
            Loc::Start => "Start: ",
        }
    }
}

/// The outermost frame read below runtime.goexit: the function the
/// goroutine started in, unless the stack was cut short (elided or
/// unreadable).
fn start_frame(g: &Goroutine) -> Option<&Frame> {
    g.frames
        .iter()
        .rev()
        .find(|f| &*f.function != "runtime.goexit")
}

/// Running on an OS thread (Delve's `running`).
fn running(g: &Goroutine) -> bool {
    g.m.is_some()
}

/// Started outside the runtime (Delve's `user`; runtime.main is the main
/// goroutine, a user one).
fn user(g: &Goroutine) -> bool {
    start_frame(g).is_none_or(|f| {
        let f = &*f.function;
        f == "runtime.main" || !(f.starts_with("runtime.") || f.starts_with("internal/"))
    })
}

enum Filter {
    Loc(Loc, String),
    Running,
    User,
    /// `KEY` or `KEY=VALUE`.
    Label(String),
}

enum GroupBy {
    Loc(Loc),
    Running,
    User,
    /// By the value of this label key.
    Label(String),
    /// goat's bare `-group`: identical stacks, in the runtime's layout.
    Stack,
}

#[derive(Default)]
struct Opts {
    loc: Option<Loc>,
    depth: Option<usize>,
    /// (filter, wanted): -with is wanted, -without is not.
    filters: Vec<(Filter, bool)>,
    group: Option<GroupBy>,
    status: Option<String>,
    func: Option<String>,
    exec: Option<String>,
    /// -l: each goroutine's labels under its line.
    labels: bool,
    /// -chan EXPR: only the goroutines waiting on that channel.
    chan: Option<String>,
    /// -n N / -all: how many goroutines (or groups) to list; `None` for
    /// one screen.
    page: Option<Page>,
}

/// How much of the list `-n N` or `-all` asked for.
#[derive(Clone, Copy)]
enum Page {
    First(usize),
    All,
}

impl Opts {
    fn needs_labels(&self) -> bool {
        self.labels
            || matches!(self.group, Some(GroupBy::Label(_)))
            || self
                .filters
                .iter()
                .any(|(f, _)| matches!(f, Filter::Label(_)))
    }

    /// Whether a filter or the grouping looks at stacks (the others need
    /// only the goroutines' headers: status, thread, labels, `created by`).
    fn needs_frames(&self) -> bool {
        self.func.is_some()
            || self.filters.iter().any(|(f, _)| match f {
                Filter::Loc(l, _) => *l != Loc::Go,
                Filter::User => true,
                Filter::Running | Filter::Label(_) => false,
            })
            || match &self.group {
                Some(GroupBy::Loc(l)) => *l != Loc::Go,
                Some(GroupBy::User | GroupBy::Stack) => true,
                Some(GroupBy::Running | GroupBy::Label(_)) | None => false,
            }
    }

    /// How many lines (or groups) to print.
    fn limit(&self) -> usize {
        match self.page {
            Some(Page::First(n)) => n,
            Some(Page::All) => usize::MAX,
            None => grpage::screen(),
        }
    }
}

fn parse(args: &[&str]) -> Result<Opts> {
    let words = quoted_words(&args.join(" "));
    let mut o = Opts::default();
    let mut i = 0;
    let set_loc = |o: &mut Opts, l: Loc| match o.loc.replace(l) {
        Some(_) => bail!("goroutines: give only one of -u -r -g -s"),
        None => Ok(()),
    };
    while let Some(w) = words.get(i) {
        i += 1;
        let mut next = |what: &str| {
            i += 1;
            words
                .get(i - 1)
                .cloned()
                .with_context(|| format!("goroutines: {w} needs {what}"))
        };
        match w.as_str() {
            "-u" => set_loc(&mut o, Loc::User)?,
            "-r" => set_loc(&mut o, Loc::Current)?,
            "-g" => set_loc(&mut o, Loc::Go)?,
            "-s" => set_loc(&mut o, Loc::Start)?,
            "-l" => o.labels = true,
            "-label" => o
                .filters
                .push((Filter::Label(next("KEY or KEY=VALUE")?), true)),
            "-t" => {
                let depth = words.get(i).and_then(|d| d.parse().ok());
                if depth.is_some() {
                    i += 1;
                }
                o.depth = Some(depth.unwrap_or(DEFAULT_DEPTH));
            }
            "-with" | "-w" | "-without" | "-wo" => {
                let want = matches!(w.as_str(), "-with" | "-w");
                let kind = next("userloc|curloc|goloc|startloc|label|running|user")?;
                let f = match kind.as_str() {
                    "running" => Filter::Running,
                    "user" => Filter::User,
                    "label" => Filter::Label(next("KEY or KEY=VALUE")?),
                    k => match Loc::from_key(k) {
                        Some(l) => Filter::Loc(l, next("a substring")?),
                        None => bail!("goroutines: {w} takes userloc, curloc, goloc, startloc, label, running or user, not {k:?}"),
                    },
                };
                o.filters.push((f, want));
            }
            "-group" | "--group" => {
                let key = words.get(i).map(String::as_str);
                let by = match key {
                    Some("running") => Some(GroupBy::Running),
                    Some("user") => Some(GroupBy::User),
                    Some("label") => {
                        let k = words.get(i + 1).cloned();
                        let k = k.with_context(|| format!("goroutines: {w} label needs a KEY"))?;
                        i += 1;
                        Some(GroupBy::Label(k))
                    }
                    Some(k) => Loc::from_key(k).map(GroupBy::Loc),
                    None => None,
                };
                if by.is_some() {
                    i += 1;
                }
                o.group = Some(by.unwrap_or(GroupBy::Stack));
            }
            "-chan" => o.chan = Some(next("a channel EXPR")?),
            "-exec" => {
                let rest = words.get(i..).unwrap_or_default();
                if rest.is_empty() {
                    bail!("goroutines: -exec needs a command");
                }
                o.exec = Some(rest.join(" "));
                break;
            }
            "-n" => {
                let n = next("a count")?;
                let n = n
                    .parse()
                    .map_err(|_| anyhow!("goroutines: -n takes a count, not {n:?}"))?;
                o.page = Some(Page::First(n));
            }
            "-all" | "--all" => o.page = Some(Page::All),
            "-status" => o.status = Some(next("a STATUS")?),
            "-f" => o.func = Some(next("a FUNC")?),
            other => bail!("goroutines: unknown argument {other:?} (see 'help goroutines')"),
        }
    }
    Ok(o)
}

fn keep(o: &Opts, g: &Goroutine, labels: &HashMap<u64, Labels>) -> bool {
    let status = o.status.as_deref();
    let func = o.func.as_deref();
    status.is_none_or(|st| g.status.contains(st))
        && func.is_none_or(|f| g.frames.iter().any(|fr| fr.function.contains(f)))
        && o.filters.iter().all(|(f, want)| {
            let hit = match f {
                Filter::Loc(l, sub) => l.text(g).contains(sub.as_str()),
                Filter::Running => running(g),
                Filter::User => user(g),
                Filter::Label(arg) => labels.get(&g.id).is_some_and(|l| labels::matches(l, arg)),
            };
            hit == *want
        })
}

/// The ids of the goroutines waiting on the channel `expr` evaluates to
/// in the selected frame.
fn chan_waiters(s: &Session, expr: &str) -> Result<HashSet<u64>> {
    let scope = s.scope()?;
    let v = match scope.eval_text(expr).map_err(|e| anyhow!(e))? {
        crate::values::eval::Val::Typed(v) => v,
        other => bail!(
            "goroutines -chan: {expr} is a {}, not a channel",
            scope.val_type(&other)
        ),
    };
    let ids = scope
        .chan_waiters(&v)
        .map_err(|e| anyhow!("goroutines -chan {expr}: {e}"))?;
    Ok(ids.into_iter().collect())
}

/// `goroutines [-u|-r|-g|-s] [-t [DEPTH]] [-l] [-with|-without ...]
/// [-group KEY] [-chan EXPR] [-f FUNC] [-status STATUS] [-label KEY[=VALUE]]
/// [-exec COMMAND]`
pub fn goroutines(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let o = parse(args)?;
    let waiting = o.chan.as_deref().map(|e| chan_waiters(s, e)).transpose()?;
    let heads = s.headers();
    let labels = match o.needs_labels() {
        true => labels::of_all(s, heads.iter()),
        false => HashMap::new(),
    };
    // Headers answer most filters; stacks are decoded (all at once) only
    // when a filter or the grouping looks at them, else only for the lines
    // printed.
    let frames = o.needs_frames();
    if frames {
        s.decode_all()?;
    }
    let g_at = |i: usize| match frames {
        true => s.goroutine_at(i),
        false => &heads[i],
    };
    let chosen: Vec<usize> = (0..heads.len())
        .filter(|&i| waiting.as_ref().is_none_or(|w| w.contains(&heads[i].id)))
        .filter(|&i| keep(&o, g_at(i), &labels))
        .collect();
    if let Some(cmd) = &o.exec {
        let ids: Vec<u64> = chosen.iter().map(|&i| heads[i].id).collect();
        return crate::repl::grexec::exec_each(s, &ids, cmd, out);
    }
    let limit = o.limit();
    // Many lines to show: one copy of every stack decoded on every core
    // beats reading the stacks one goroutine at a time.
    if chosen.len().min(limit) > ONE_BY_ONE_MAX {
        s.decode_all()?;
    }
    let loc = o.loc.unwrap_or(Loc::User);
    let line = |g: &Goroutine, indent: &str| {
        let mark = if Some(g.id) == s.current { '*' } else { ' ' };
        let mut l = format!("{indent}{mark} {}", summary(g, loc));
        if let Some(text) = labels
            .get(&g.id)
            .filter(|_| o.labels)
            .and_then(labels::line)
        {
            l += &format!("\n{indent}\t{text}");
        }
        l
    };
    let Some(by) = &o.group else {
        for &i in chosen.iter().take(limit) {
            let g = s.goroutine_at(i);
            writeln!(out, "{}", line(g, ""))?;
            if let Some(depth) = o.depth {
                write_frames(out, g, depth, "\t")?;
            }
        }
        let more = chosen.len().saturating_sub(limit);
        if more > 0 {
            writeln!(out, "{}", grpage::more_line(more, "goroutines"))?;
        }
        writeln!(out, "[{}]", goroutine_count(chosen.len()))?;
        return Ok(());
    };
    let members: Vec<&Goroutine> = chosen.iter().map(|&i| g_at(i)).collect();
    if matches!(by, GroupBy::Stack) {
        let groups = report::write_grouped_first(out, &members, limit)?;
        if groups > limit {
            writeln!(out, "{}", grpage::more_line(groups - limit, "groups"))?;
        }
        return Ok(());
    }
    let key = |g: &Goroutine| match by {
        GroupBy::Loc(l) => l.of(g),
        GroupBy::Running => format!("running={}", running(g)),
        GroupBy::User => format!("user={}", user(g)),
        GroupBy::Label(k) => labels
            .get(&g.id)
            .map_or(format!("{k}="), |l| labels::group_key(l, k)),
        GroupBy::Stack => String::new(),
    };
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (&i, g) in chosen.iter().zip(members) {
        groups.entry(key(g)).or_default().push(i);
    }
    // Biggest groups first, as goat stacks --group does.
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    for (i, (name, gs)) in groups.iter().take(limit).enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{name}")?;
        for &i in gs.iter().take(PER_GROUP) {
            // With its frames (a header when grouped by status, thread or
            // label: decoded now).
            let g = s.goroutine_at(i);
            writeln!(out, "{}", line(g, "\t"))?;
            if let Some(depth) = o.depth {
                write_frames(out, g, depth, "\t\t")?;
            }
        }
        writeln!(out, "\tTotal: {}", gs.len())?;
    }
    if groups.len() > limit {
        writeln!(out)?;
        writeln!(out, "{}", grpage::more_line(groups.len() - limit, "groups"))?;
    }
    Ok(())
}

/// `1 goroutine`, `2 goroutines`.
pub(in crate::repl) fn goroutine_count(n: usize) -> String {
    match n {
        1 => "1 goroutine".into(),
        n => format!("{n} goroutines"),
    }
}

/// `Goroutine 12 - chan receive - main.chanReceive (main.go:31) [locked]
/// (thread 123)`, the location being the one `loc` picks.
/// The one-line summary `goroutine` prints of the selected goroutine: its
/// `goroutines` line at the user location.
pub(in crate::repl) fn user_summary(g: &Goroutine) -> String {
    summary(g, Loc::User)
}

fn summary(g: &Goroutine, loc: Loc) -> String {
    let mut line = format!("Goroutine {} - {}", g.id, g.status);
    if let Some(m) = g.wait_minutes.filter(|&m| m > 0) {
        line += &format!(", {m} minutes");
    }
    if !g.frames.is_empty() || loc == Loc::Go {
        line += &format!(" - {}{}", loc.label(), loc.of(g));
    }
    if g.locked {
        line += " [locked]";
    }
    if let Some(m) = g.m {
        line += &format!(" (thread {})", m.tid);
    }
    if g.unreadable.is_some() {
        line += " [stack unreadable]";
    }
    line
}
