//! CPython version numbers.

use std::fmt;

/// The release level of a CPython version (`PY_RELEASE_LEVEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReleaseLevel {
    /// `a`: alpha.
    Alpha,
    /// `b`: beta.
    Beta,
    /// `rc`: release candidate.
    Candidate,
    /// A final release.
    Final,
}

/// A CPython version such as 3.11.7 or 3.15.0a2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PythonVersion {
    /// Major version (3).
    pub major: u8,
    /// Minor version (8 to 15).
    pub minor: u8,
    /// Micro (patch) version; 0 when only the minor version is known.
    pub micro: u8,
    /// Alpha, beta, candidate or final.
    pub level: ReleaseLevel,
    /// Serial of a pre-release.
    pub serial: u8,
    /// Whether the micro version was actually read (not guessed from a file name).
    pub micro_known: bool,
}

impl PythonVersion {
    /// The oldest minor version pydx reads.
    pub const OLDEST_SUPPORTED: (u8, u8) = (3, 8);
    /// The newest minor version whose layout pydx knows.
    pub const NEWEST_KNOWN: (u8, u8) = (3, 15);

    /// A final release `major.minor.micro`.
    pub fn new(major: u8, minor: u8, micro: u8) -> Self {
        Self {
            major,
            minor,
            micro,
            level: ReleaseLevel::Final,
            serial: 0,
            micro_known: true,
        }
    }

    /// A version known only to its minor number (from a file name).
    pub fn minor_only(major: u8, minor: u8) -> Self {
        Self {
            micro_known: false,
            ..Self::new(major, minor, 0)
        }
    }

    /// Decodes `PY_VERSION_HEX` (as in `Py_Version` and `_Py_DebugOffsets`).
    pub fn from_hex(hex: u64) -> Option<Self> {
        let major = ((hex >> 24) & 0xff) as u8;
        let minor = ((hex >> 16) & 0xff) as u8;
        let micro = ((hex >> 8) & 0xff) as u8;
        let level = match (hex >> 4) & 0xf {
            0xa => ReleaseLevel::Alpha,
            0xb => ReleaseLevel::Beta,
            0xc => ReleaseLevel::Candidate,
            0xf => ReleaseLevel::Final,
            _ => return None,
        };
        if major != 3 || hex >> 32 != 0 {
            return None;
        }
        Some(Self {
            major,
            minor,
            micro,
            level,
            serial: (hex & 0xf) as u8,
            micro_known: true,
        })
    }

    /// Parses `3.11.7`, `3.15.0a2` or `3.13.0rc1` at the start of `text`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '.');
        let major: u8 = parts.next()?.parse().ok()?;
        let minor: u8 = parts.next()?.parse().ok()?;
        let rest = parts.next()?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let micro: u8 = rest[..digits].parse().ok()?;
        let suffix = &rest[digits..];
        let (level, serial_text) = if let Some(s) = suffix.strip_prefix("rc") {
            (ReleaseLevel::Candidate, s)
        } else if let Some(s) = suffix.strip_prefix('a') {
            (ReleaseLevel::Alpha, s)
        } else if let Some(s) = suffix.strip_prefix('b') {
            (ReleaseLevel::Beta, s)
        } else {
            (ReleaseLevel::Final, "")
        };
        let serial_digits = serial_text.bytes().take_while(u8::is_ascii_digit).count();
        let serial = serial_text[..serial_digits].parse().unwrap_or(0);
        (major == 3).then_some(Self {
            major,
            minor,
            micro,
            level,
            serial,
            micro_known: true,
        })
    }

    /// `(major, minor)`, for comparisons with layout thresholds.
    pub fn minor_version(&self) -> (u8, u8) {
        (self.major, self.minor)
    }

    /// Whether this is at least `major.minor`.
    pub fn at_least(&self, major: u8, minor: u8) -> bool {
        self.minor_version() >= (major, minor)
    }
}

impl fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.micro_known {
            return write!(f, "{}.{}", self.major, self.minor);
        }
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)?;
        match self.level {
            ReleaseLevel::Alpha => write!(f, "a{}", self.serial),
            ReleaseLevel::Beta => write!(f, "b{}", self.serial),
            ReleaseLevel::Candidate => write!(f, "rc{}", self.serial),
            ReleaseLevel::Final => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_py_version_hex() {
        assert_eq!(
            PythonVersion::from_hex(0x030d00f0).unwrap().to_string(),
            "3.13.0"
        );
        assert_eq!(
            PythonVersion::from_hex(0x030b02f0).unwrap().to_string(),
            "3.11.2"
        );
        assert_eq!(
            PythonVersion::from_hex(0x030f00a2).unwrap().to_string(),
            "3.15.0a2"
        );
        assert_eq!(
            PythonVersion::from_hex(0x030e00c1).unwrap().to_string(),
            "3.14.0rc1"
        );
        assert!(PythonVersion::from_hex(0x020700f0).is_none());
        assert!(PythonVersion::from_hex(0x030b0000).is_none());
    }

    #[test]
    fn parses_version_strings() {
        assert_eq!(
            PythonVersion::parse("3.10.13 (main, Jan").unwrap(),
            PythonVersion::new(3, 10, 13)
        );
        let pre = PythonVersion::parse("3.13.0rc2+").unwrap();
        assert_eq!((pre.level, pre.serial), (ReleaseLevel::Candidate, 2));
        assert!(PythonVersion::parse("2.7.18").is_none());
        assert!(PythonVersion::parse("3.x").is_none());
    }

    #[test]
    fn minor_only_versions_print_without_micro() {
        assert_eq!(PythonVersion::minor_only(3, 9).to_string(), "3.9");
    }
}
