//! The repository stands alone: no tracked file points readers at the project's planning
//! folder outside the repository (a clone does not have it), so the docs are complete in
//! themselves.

use std::process::Command;

/// The text no tracked file may contain, split so that this file does not contain it.
fn outside() -> String {
    ["..", "/shared"].concat()
}

#[test]
fn no_tracked_file_refers_outside_the_repository() {
    let root = env!("CARGO_MANIFEST_DIR");
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .expect("git ls-files (the tests run in a git checkout)");
    assert!(listed.status.success(), "git ls-files failed");
    let needle = outside();
    let mut offenders = Vec::new();
    let mut scanned = 0;
    for path in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path).into_owned();
        let Ok(bytes) = std::fs::read(std::path::Path::new(root).join(&path)) else {
            continue; // deleted in the work tree
        };
        scanned += 1;
        if String::from_utf8_lossy(&bytes).contains(&needle) {
            offenders.push(path);
        }
    }
    assert!(scanned > 50, "only {scanned} tracked files found");
    assert!(
        offenders.is_empty(),
        "tracked files refer to {needle}: {offenders:?}"
    );
}
