//! The `pennypost` binary: parses the command line and hands over to [`pennypost::cli`].

/// mimalloc instead of glibc's allocator: the writer's sled transactions allocate and free a
/// copy of every key and value they touch, and glibc's `malloc`/`free` were about 14% of the
/// server's CPU on the redeem path (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pennypost::cli::main()
}
