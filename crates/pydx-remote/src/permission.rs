//! Explaining why the kernel refused access to a process, and what to do.

/// `CAP_SYS_PTRACE` in the capability bit sets of `/proc/PID/status`.
const CAP_SYS_PTRACE_BIT: u32 = 19;

fn status_field(pid: &str, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
}

fn effective_uid(pid: &str) -> Option<u32> {
    status_field(pid, "Uid:")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn has_cap_sys_ptrace() -> bool {
    status_field("self", "CapEff:")
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_PTRACE_BIT) != 0)
}

fn ptrace_scope() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A one-sentence explanation of how to get read access to process `pid`,
/// based on users, capabilities and the Yama `ptrace_scope` setting.
pub fn permission_hint(pid: u32) -> String {
    let mine = effective_uid("self");
    let theirs = effective_uid(&pid.to_string());
    let capable = has_cap_sys_ptrace();
    match ptrace_scope() {
        Some(3) => {
            return "kernel.yama.ptrace_scope is 3, which disables ptrace for everyone until reboot; \
                    no profiler that reads process memory can attach on this machine"
                .to_string()
        }
        Some(2) if !capable => {
            return "kernel.yama.ptrace_scope is 2, so only processes with CAP_SYS_PTRACE may attach: \
                    run pydx as root (sudo pydx ...) or grant it CAP_SYS_PTRACE"
                .to_string()
        }
        Some(1) if !capable => {
            return "kernel.yama.ptrace_scope is 1, so only ancestors may attach: run pydx with sudo, \
                    start the program under pydx (pydx record -- python app.py), \
                    or allow it with `sudo sysctl kernel.yama.ptrace_scope=0`"
                .to_string()
        }
        _ => {}
    }
    if let (Some(mine), Some(theirs)) = (mine, theirs) {
        if mine != theirs && !capable {
            return format!(
                "the process belongs to uid {theirs} and pydx runs as uid {mine}: \
                 run pydx as that user or with sudo"
            );
        }
    }
    if capable {
        "pydx has CAP_SYS_PTRACE but was still refused; a seccomp profile (e.g. Docker's default \
         before 19.03) may block process_vm_readv: run the container with --cap-add SYS_PTRACE \
         or --security-opt seccomp=unconfined"
            .to_string()
    } else {
        "reading another process's memory needs CAP_SYS_PTRACE: run pydx with sudo, or in a \
         container add the capability (docker run --cap-add SYS_PTRACE; Kubernetes: \
         securityContext.capabilities.add: [SYS_PTRACE])"
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_is_one_line_and_actionable() {
        let hint = permission_hint(std::process::id());
        assert!(!hint.contains('\n'));
        assert!(
            hint.contains("sudo") || hint.contains("SYS_PTRACE"),
            "{hint}"
        );
    }
}
