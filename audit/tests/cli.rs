//! The standalone `pennypost-audit` binary: the same flags and exit codes as `pennypost audit`
//! (whose checks against honest and fake servers are in the server's `tests/api/audit.rs`).

use std::process::Command;

#[test]
fn takes_the_flags_of_pennypost_audit() {
    let output = Command::new(env!("CARGO_BIN_EXE_pennypost-audit"))
        .arg("--help")
        .output()
        .expect("run pennypost-audit");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in ["--server <SERVER>", "--state <STATE>", "--quiet"] {
        assert!(help.contains(flag), "{help}");
    }
}

#[test]
fn unreachable_server_exits_2() {
    let dir = std::env::temp_dir().join(format!("pennypost-audit-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_pennypost-audit"))
        .args(["--server", "http://127.0.0.1:9", "--state"])
        .arg(dir.join("state.json"))
        .output()
        .expect("run pennypost-audit");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: could not finish the audit"),
        "{stderr}"
    );
}
