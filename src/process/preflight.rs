//! `goat check PID`: why an attach would fail, before it fails. Every failing
//! line carries the exact command that fixes it.

use std::fmt;
use std::path::Path;

use super::procfs::{self, Who};
use crate::tracer::AttachError;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub title: String,
    pub detail: String,
    pub fix: Option<String>,
}

/// Every check run against one pid.
#[derive(Debug, Clone)]
pub struct Report {
    pub pid: i32,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            writeln!(f, "{mark} {}: {}", c.title, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(f, "       fix: {fix}")?;
            }
        }
        if self.ok() && self.checks.iter().any(|c| c.title == GOROUTINES) {
            writeln!(
                f,
                "goat can attach to pid {} and read its goroutines",
                self.pid
            )
        } else if self.ok() {
            writeln!(f, "goat can attach to pid {}", self.pid)
        } else {
            writeln!(
                f,
                "goat cannot attach to pid {} until the failures above are fixed",
                self.pid
            )
        }
    }
}

/// What an executable inspector found (`binary/` supplies the real one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExeInfo {
    pub go_version: Option<String>,
    /// Where the version was found, when that is worth saying (no build
    /// info: "from runtime.buildVersion; no build info").
    pub version_note: Option<String>,
    pub has_dwarf: bool,
    pub has_pclntab: bool,
    /// What the loader `goat stacks` uses made of the running program:
    /// how many goroutines and where the runtime layout came from, or why
    /// it cannot read them. `None` when not tried.
    pub goroutines: Option<Result<String, String>>,
}

/// The title of the line that says whether goat can read the goroutines.
const GOROUTINES: &str = "goroutines";

fn ok(title: &str, detail: impl Into<String>) -> Check {
    Check {
        ok: true,
        title: title.into(),
        detail: detail.into(),
        fix: None,
    }
}

fn fail(title: &str, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check {
        ok: false,
        title: title.into(),
        detail: detail.into(),
        fix,
    }
}

// ---- /proc readers (all through `procfs`) ----

const PF_KTHREAD: u32 = 0x0020_0000;
const CAP_SYS_PTRACE: u32 = 19;

fn comm(pid: i32) -> String {
    procfs::comm(pid)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn have_cap_sys_ptrace() -> bool {
    procfs::own_status().is_some_and(|s| s.capeff & (1 << CAP_SYS_PTRACE) != 0)
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("#{uid}"))
}

/// Goat's own pid and every ancestor's.
fn self_and_ancestors() -> Vec<i32> {
    let mut out = vec![std::process::id() as i32];
    let mut cur = out[0];
    while let Some(st) = procfs::stat(cur) {
        if st.ppid <= 0 || out.contains(&st.ppid) {
            break;
        }
        out.push(st.ppid);
        cur = st.ppid;
    }
    out
}

fn is_descendant_of_self(pid: i32) -> bool {
    let me = std::process::id() as i32;
    let mut cur = pid;
    for _ in 0..4096 {
        match procfs::stat(cur) {
            Some(st) if st.ppid == me => return true,
            Some(st) if st.ppid > 0 => cur = st.ppid,
            _ => return false,
        }
    }
    false
}

/// The tracer of `pid`, as (process id, name), if it is traced.
/// `TracerPid` names the tracing *thread*; this reports its process.
pub(crate) fn tracer_of(pid: i32) -> Option<(i32, String)> {
    let tid = procfs::status(pid)?.tracerpid;
    if tid == 0 {
        return None;
    }
    let tgid = procfs::status(tid).map_or(tid, |s| s.tgid);
    Some((tgid, tracer_name(tgid)))
}

/// The name of tracer `pid`, from its `comm` (strace, gdb, dlv); goat's own
/// tracer process as its command is typed, `goat tracer` (it names its
/// `comm` goat-tracer, and goat's in-process tracer thread is `goat`).
fn tracer_name(pid: i32) -> String {
    match comm(pid).as_str() {
        "goat-tracer" => "goat tracer".into(),
        "goat-guardian" => "goat guardian".into(),
        name => name.to_string(),
    }
}

/// What to do about tracer `name` (pid `pid`) holding the target: quit
/// the debugger that holds it, named as it is.
pub fn detach_advice(name: &str, pid: i32) -> String {
    match name {
        "goat tracer" | "goat guardian" | "goat" => format!(
            "another goat session holds it: quit that session first; if it is hung: kill {pid}"
        ),
        _ => format!("detach {name} (pid {pid}) first; if it is hung: kill {pid}"),
    }
}

/// The checks that can refuse an attach outright, as [`AttachError`]s.
pub fn refuse_early(pid: i32) -> Result<(), AttachError> {
    if pid <= 0 {
        return Err(AttachError::NoSuchProcess { pid });
    }
    if self_and_ancestors().contains(&pid) || procfs::is_own_thread(pid) {
        return Err(AttachError::SelfAttach);
    }
    let st = procfs::stat(pid).ok_or(AttachError::NoSuchProcess { pid })?;
    if matches!(st.state, 'Z' | 'X' | 'x') {
        return Err(AttachError::Zombie { pid });
    }
    if st.flags & PF_KTHREAD != 0 {
        return Err(AttachError::KernelThread { pid });
    }
    if let Some((tracer_pid, tracer_name)) = tracer_of(pid) {
        return Err(AttachError::AlreadyTraced {
            pid,
            tracer_pid,
            tracer_name,
        });
    }
    Ok(())
}

/// The failing permission checks, as advice for an EPERM from ptrace.
pub fn permission_advice(pid: i32) -> String {
    let creds = credentials(pid);
    let creds_ok = creds.ok;
    let checks = [ptrace_scope(pid), creds, dumpable(pid, creds_ok)];
    let lines: Vec<String> = checks
        .iter()
        // A consequence of another failure (no fix of its own) is not advice.
        .filter(|c| !c.ok && c.fix.is_some())
        .map(|c| match &c.fix {
            Some(fix) => format!("{}: {}\n  fix: {fix}", c.title, c.detail),
            None => format!("{}: {}", c.title, c.detail),
        })
        .collect();
    if lines.is_empty() {
        format!("the kernel refused ptrace (EPERM) for an unknown reason (an LSM such as SELinux or AppArmor?)\n  fix: sudo goat check {pid}")
    } else {
        lines.join("\n")
    }
}

// ---- the individual checks ----

fn ptrace_scope(pid: i32) -> Check {
    const T: &str = "ptrace_scope";
    let cap = have_cap_sys_ptrace();
    let Some(raw) = procfs::yama_ptrace_scope() else {
        return ok(T, "absent (no Yama LSM): classic ptrace permissions apply");
    };
    match raw.as_str() {
        "0" => ok(T, "0 (classic): any process of the same user may be traced"),
        "1" if cap => ok(T, "1 (restricted: only descendants), but goat has CAP_SYS_PTRACE"),
        "1" if is_descendant_of_self(pid) => ok(T, "1 (restricted: only descendants); the target is goat's descendant"),
        "1" => fail(
            T,
            "1 (restricted: only descendants): goat may trace only its own children, \
             unless the target called prctl(PR_SET_PTRACER) or goat has CAP_SYS_PTRACE",
            Some(format!("sudo sysctl -w kernel.yama.ptrace_scope=0   (or: sudo goat check {pid})")),
        ),
        "2" if cap => ok(T, "2 (admin-only), and goat has CAP_SYS_PTRACE"),
        "2" => fail(
            T,
            "2 (admin-only): only a process with CAP_SYS_PTRACE may trace",
            Some("sudo setcap cap_sys_ptrace+ep $(command -v goat)".into()),
        ),
        "3" => fail(
            T,
            "3 (no attach): ptrace is disabled for everyone until reboot",
            Some("none at runtime: set kernel.yama.ptrace_scope=2 or lower in /etc/sysctl.d/ and reboot".into()),
        ),
        other => ok(T, format!("{other} (unknown value)")),
    }
}

fn credentials(pid: i32) -> Check {
    const T: &str = "user";
    let (uid, euid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::geteuid().as_raw(),
    );
    let gid = nix::unistd::getgid().as_raw();
    let Some(st) = procfs::status(pid) else {
        return fail(T, format!("cannot read /proc/{pid}/status"), None);
    };
    let tu = [st.ruid, st.euid, st.suid, st.fuid];
    let tg = [st.rgid, st.egid, st.sgid, st.fgid];
    let who = format!(
        "goat runs as uid {uid} (euid {euid}); target uids real/effective/saved {}/{}/{}",
        tu[0], tu[1], tu[2]
    );
    if have_cap_sys_ptrace() {
        return ok(T, format!("{who}; goat has CAP_SYS_PTRACE"));
    }
    let same_uid = tu.iter().take(3).all(|&u| u == uid);
    let same_gid = tg.iter().take(3).all(|&g| g == gid);
    // The kernel also wants the tracer to hold every capability the target
    // may use (commoncap's ptrace check): root without CAP_SYS_PTRACE, as
    // in a container's default set, cannot trace a fuller root.
    let ours = procfs::own_status().map_or(0, |s| s.capeff);
    let missing = st.capprm & !ours;
    let fix = |same_user: bool| {
        // Both ways, the likelier first: a guess about where goat runs
        // must not hide the other fix.
        let host = "sudo setcap cap_sys_ptrace+ep $(command -v goat), or run goat with sudo";
        let mut fix = if in_container() {
            format!("{CONTAINER_FIX}; outside a container: {host}")
        } else {
            format!("{host}; if goat runs in a container: {CONTAINER_FIX}")
        };
        if !same_user {
            fix = format!(
                "run as the same user: sudo -u {} goat check {pid}; or {fix}",
                user_name(tu[1])
            );
        }
        fix
    };
    if !(same_uid && same_gid) {
        return fail(
            T,
            format!("{who}: not the same user (or a setuid/setgid program), and goat lacks CAP_SYS_PTRACE"),
            Some(fix(false)),
        );
    }
    if missing != 0 {
        return fail(
            T,
            format!("{who}: same user, but the target holds capabilities goat lacks (mask {missing:#x}), and goat lacks CAP_SYS_PTRACE"),
            Some(fix(true)),
        );
    }
    ok(T, format!("{who}: same user"))
}

/// How to give goat CAP_SYS_PTRACE when it runs in a container.
const CONTAINER_FIX: &str = "give the container CAP_SYS_PTRACE: start it with \
     `docker run --cap-add=SYS_PTRACE --pid=container:TARGET ...` (podman alike), or in \
     Kubernetes add it to the debug container: `securityContext.capabilities.add: [\"SYS_PTRACE\"]` \
     (`kubectl debug -it POD --target=CONTAINER --profile=general --image=IMAGE`)";

/// Whether goat itself runs in a container: what the runtimes leave behind
/// (docker's `/.dockerenv`, podman's `/run/.containerenv`, Kubernetes'
/// service variables), or a container's cgroup path.
fn in_container() -> bool {
    let marker = ["/.dockerenv", "/run/.containerenv"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    marker
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        || ["docker", "kubepods", "containerd", "libpod", "crio"]
            .iter()
            .any(|k| cgroup.contains(k))
}

fn tracer(pid: i32) -> Check {
    const T: &str = "tracer";
    match tracer_of(pid) {
        None => ok(T, "not traced by anyone"),
        Some((tpid, name)) => fail(
            T,
            format!("already traced by pid {tpid} ({name}); a process has one tracer at a time"),
            Some(detach_advice(&name, tpid)),
        ),
    }
}

/// `creds_ok`: the user check passed. When it did not, `/proc/PID/mem` is
/// closed to goat for that reason alone, and blaming the dumpable flag
/// would send the user after the wrong cause.
fn dumpable(pid: i32, creds_ok: bool) -> Check {
    const T: &str = "dumpable";
    if nix::unistd::geteuid().is_root() {
        return ok(
            T,
            "goat runs as root: the dumpable flag does not restrict it",
        );
    }
    match procfs::open_mem(pid, false) {
        Ok(_) => ok(T, format!("/proc/{pid}/mem is readable")),
        Err(e) if !creds_ok => fail(
            T,
            format!("cannot open /proc/{pid}/mem ({e}), as follows from the user check above"),
            None,
        ),
        Err(e) => fail(
            T,
            format!(
                "cannot open /proc/{pid}/mem ({e}): the process may be non-dumpable \
                 (setuid or file-capability binary, or prctl(PR_SET_DUMPABLE, 0)), which only root may trace"
            ),
            Some(format!("sudo goat check {pid}")),
        ),
    }
}

fn namespace(pid: i32) -> Check {
    const T: &str = "pid namespace";
    let mine = procfs::ns_link(Who::Me, "pid");
    let theirs = procfs::ns_link(Who::Pid(pid), "pid");
    match (mine, theirs) {
        (Some(a), Some(b)) if a == b => ok(T, "same as goat's"),
        (Some(_), Some(_)) => {
            // As the kernel shows it: the pids, outermost namespace first.
            let nspid = procfs::status(pid)
                .and_then(|s| s.nspid)
                .map(|ids| {
                    ids.iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join("\t")
                })
                .unwrap_or_default();
            let inner = nspid.split_whitespace().last().unwrap_or("?").to_string();
            ok(
                T,
                format!("different from goat's (a container?): fine, but inside its namespace the pid is {inner} (NSpid: {nspid})"),
            )
        }
        _ => ok(
            T,
            "could not compare (ns links unreadable); assuming goat can see the pid",
        ),
    }
}

fn executable<E: std::fmt::Display>(
    pid: i32,
    inspect: &dyn Fn(&Path) -> Result<ExeInfo, E>,
) -> Vec<Check> {
    let exe = procfs::exe_path(pid).display().to_string();
    let link = match procfs::exe(pid) {
        Ok(l) => l.to_string_lossy().into_owned(),
        Err(e) => {
            return vec![fail(
                "executable",
                format!("cannot read {exe}: {e}"),
                Some(format!("sudo goat check {pid}")),
            )]
        }
    };
    let mut out = vec![if let Some(path) = link.strip_suffix(" (deleted)") {
        ok(
            "executable",
            format!("{path} was deleted or replaced on disk (a deploy?); goat reads the running binary through {exe}"),
        )
    } else {
        ok("executable", link)
    }];
    let info = match inspect(Path::new(&exe)) {
        Ok(info) => info,
        Err(e) => {
            out.push(fail(
                "go binary",
                format!("cannot inspect {exe}: {e}"),
                None,
            ));
            return out;
        }
    };
    if !info.has_pclntab {
        out.push(fail(
            "go binary",
            "not a Go binary (no .gopclntab)",
            Some(
                "goat only reads Go programs: pass the pid of a Go process (pgrep -a NAME)".into(),
            ),
        ));
        return out;
    }
    let v = info
        .go_version
        .unwrap_or_else(|| "(version unknown)".into());
    let v = match info.version_note {
        Some(note) => format!("{v} ({note})"),
        None => v,
    };
    let d = if info.has_dwarf {
        "with DWARF"
    } else {
        "without DWARF (stripped): pclntab only"
    };
    out.push(ok("go binary", format!("Go {v}, {d}")));
    match info.goroutines {
        Some(Ok(what)) => out.push(ok(GOROUTINES, what)),
        Some(Err(why)) => out.push(fail(GOROUTINES, why, None)),
        None => {}
    }
    out
}

/// Runs every check against `pid`. `exe_inspector` reads the executable
/// (given as `/proc/PID/exe`) and says whether it is a Go program; its
/// error, whatever its type, is reported as the check's detail (the
/// reader of executables lives above this module).
pub fn check<E: std::fmt::Display>(
    pid: i32,
    exe_inspector: &dyn Fn(&Path) -> Result<ExeInfo, E>,
) -> Report {
    let mut checks = Vec::new();
    let st = if pid > 0 { procfs::stat(pid) } else { None };
    let Some(st) = st else {
        checks.push(fail(
            "process",
            format!("no process with pid {pid}"),
            Some("pgrep -a NAME   (find the Go program's pid)".into()),
        ));
        return Report { pid, checks };
    };
    let name = comm(pid);
    if self_and_ancestors().contains(&pid) {
        checks.push(fail(
            "process",
            format!("pid {pid} ({name}) is goat itself or one of its ancestors"),
            Some("pass the pid of the Go program: pgrep -a NAME".into()),
        ));
        return Report { pid, checks };
    }
    match st.state {
        'Z' => checks.push(fail(
            "process",
            format!("pid {pid} ({name}) is a zombie: it has exited and waits for its parent {} to reap it", st.ppid),
            Some("nothing to attach to: restart the program and check its new pid".into()),
        )),
        'X' | 'x' => checks.push(fail("process", format!("pid {pid} ({name}) is exiting"), None)),
        _ if st.flags & PF_KTHREAD != 0 => checks.push(fail(
            "process",
            format!("pid {pid} ({name}) is a kernel thread"),
            Some("pass the pid of a user-space Go program: pgrep -a NAME".into()),
        )),
        s => checks.push(ok("process", format!("pid {pid} ({name}), state {s}"))),
    }
    if !checks[0].ok {
        return Report { pid, checks };
    }
    checks.push(ptrace_scope(pid));
    let creds = credentials(pid);
    let creds_ok = creds.ok;
    checks.push(creds);
    checks.push(tracer(pid));
    checks.push(dumpable(pid, creds_ok));
    checks.push(namespace(pid));
    let earlier_ok = checks.iter().all(|c| c.ok);
    let mut exe = executable(pid, exe_inspector);
    // Reading the goroutines fails for the reasons already reported above
    // (permissions, say): the line would only repeat them.
    if !earlier_ok {
        exe.retain(|c| c.ok || c.title != GOROUTINES);
    }
    checks.extend(exe);
    Report { pid, checks }
}
