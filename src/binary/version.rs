//! The Go release an executable was built with, parsed once for every
//! layer: `binary` picks the moduledata layout by it, `goruntime` the
//! runtime's structures and `report` the traceback format.

/// A Go release as `major.minor` (patch levels never change a layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
}

impl GoVersion {
    /// Parses buildinfo's version (`go1.21.13`, `go1.22rc1`, `go1.27.3 X:boringcrypto`);
    /// `None` for anything else (e.g. `devel ...`).
    pub fn parse(s: &str) -> Option<GoVersion> {
        let rest = s.strip_prefix("go")?;
        let mut parts = rest.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(GoVersion { major, minor })
    }

    /// The minor release of a Go 1 version string (`go1.21.13` → 21).
    pub fn go1_minor(s: &str) -> Option<u32> {
        GoVersion::parse(s)
            .filter(|v| v.major == 1)
            .map(|v| v.minor)
    }

    pub fn at_least(self, minor: u32) -> bool {
        self.major > 1 || self.minor >= minor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_strings() {
        assert_eq!(
            GoVersion::parse("go1.21.13"),
            Some(GoVersion {
                major: 1,
                minor: 21
            })
        );
        assert_eq!(
            GoVersion::parse("go1.22rc1"),
            Some(GoVersion {
                major: 1,
                minor: 22
            })
        );
        assert_eq!(
            GoVersion::parse("go1.27.3 X:boringcrypto").map(|v| v.minor),
            Some(27)
        );
        assert_eq!(GoVersion::parse("devel +abc"), None);
    }

    #[test]
    fn go1_minor_parses() {
        assert_eq!(GoVersion::go1_minor("go1.21.13"), Some(21));
        assert_eq!(GoVersion::go1_minor("go1.27rc1"), Some(27));
        assert_eq!(GoVersion::go1_minor("devel go1.28-abc"), None);
        assert_eq!(GoVersion::go1_minor("go1."), None);
    }
}
