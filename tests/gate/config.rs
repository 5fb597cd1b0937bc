//! A bad `gate.toml` stops the start with a message naming its line.

use std::process::Command;

use crate::harness;

/// Runs `pennypost gate` on `text`; returns its stderr after asserting exit code 2.
fn refused(text: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gate.toml");
    std::fs::write(&path, text).expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_pennypost"))
        .arg("gate")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn config_mistakes_stop_the_start_naming_the_line() {
    let base = harness::config("http://127.0.0.1:1", "http://127.0.0.1:2", "");
    // `base` is 5 lines of keys, an empty line, then the routes: the first route's `path`
    // is on line 9.
    let lines = base.lines().count();
    let route = "[[price]]\nmethod = \"POST\"\npath = \"/comments/\"\nstamps = 3\n";
    let stderr = refused(&format!("{base}{route}"));
    let line = lines + 3;
    assert!(
        stderr.contains(&format!("line {line}:")) && stderr.contains("listed twice"),
        "{stderr}"
    );
    let stderr = refused(&format!(
        "{base}[[price]]\nmethod = \"POST\"\npath = \"/a*b\"\nstamps = 1\n"
    ));
    assert!(stderr.contains(&format!("line {}:", lines + 3)), "{stderr}");
    let stderr = refused(&format!(
        "{base}[[price]]\nmethod = \"post\"\npath = \"/x\"\nstamps = 1\n"
    ));
    assert!(stderr.contains(&format!("line {}:", lines + 2)), "{stderr}");
    let stderr = refused(&format!(
        "{base}[[price]]\nmethod = \"POST\"\npath = \"/x\"\nstamps = 1\ncapture = \"always\"\n"
    ));
    assert!(stderr.contains(&format!("line {}:", lines + 5)), "{stderr}");
    let stderr = refused(&base.replacen("listen", "colour = 1\nlisten", 1));
    assert!(
        stderr.contains("line 1:") && stderr.contains("colour"),
        "{stderr}"
    );
    let stderr = refused(&base.replacen(
        "listen",
        "hold_ttl_secs = 10\nupstream_timeout_secs = 10\nlisten",
        1,
    ));
    assert!(
        stderr.contains("line 1:") && stderr.contains("hold_ttl_secs"),
        "{stderr}"
    );
}
