//! The Go release of the target, and the output details that depend on it.

pub use crate::binary::GoVersion;

/// The oldest release goat supports.
pub const OLDEST_SUPPORTED: GoVersion = GoVersion {
    major: 1,
    minor: 19,
};

/// What the runtime prints, by release (the parser is `binary`'s).
impl GoVersion {
    /// 1.21 added `created by F in goroutine N` and the 50+50 frame elision.
    pub fn has_parent_goid(self) -> bool {
        self.at_least(21)
    }

    /// 1.22 prints ` gp=0x.. m=N mp=0x..` in headers at the system level.
    pub fn header_shows_gp(self) -> bool {
        self.at_least(22)
    }

    /// The pclntab `funcID` of compiler-generated wrappers (abi.FuncIDWrapper,
    /// the defer and go wrappers among them), by release; `None` for a
    /// release goat was not checked against.
    pub fn wrapper_func_id(self) -> Option<u8> {
        match (self.major, self.minor) {
            (1, 19..=21) => Some(21),
            (1, 22..=24) => Some(22),
            (1, 25..=27) => Some(23),
            _ => None,
        }
    }

    /// The runtime's `gStatusStrings`, indexed by status.
    pub fn status_name(self, status: u32) -> &'static str {
        const NAMES: [&str; 10] = [
            "idle",
            "runnable",
            "running",
            "syscall",
            "waiting",
            "",
            "dead",
            "",
            "copystack",
            "preempted",
        ];
        match status {
            10 if self.at_least(26) => "leaked",
            11 if self.at_least(26) => "waiting for cgo callback",
            s => match NAMES.get(s as usize) {
                Some(n) if !n.is_empty() => n,
                _ => "???",
            },
        }
    }
}

pub const G_WAITING: u32 = 4;
pub const G_SYSCALL: u32 = 3;
pub const G_RUNNING: u32 = 2;
pub const G_DEAD: u32 = 6;
pub const G_LEAKED: u32 = 10;
pub const G_DEAD_EXTRA: u32 = 11;
pub const G_SCAN: u32 = 0x1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_follow_the_release() {
        let v19 = GoVersion {
            major: 1,
            minor: 19,
        };
        let v27 = GoVersion {
            major: 1,
            minor: 27,
        };
        assert_eq!(v19.status_name(4), "waiting");
        assert_eq!(v19.status_name(10), "???");
        assert_eq!(v27.status_name(10), "leaked");
        assert_eq!(v27.status_name(5), "???");
    }
}
