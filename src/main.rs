use vault::system::WALK_STACK;

mod cli;

fn main() {
    limit_allocator_caching();
    let parsed = cli::parse();
    cli::password::take_secrets_from_environment();
    let code = run_on_deep_stacks(parsed);
    std::process::exit(code);
}

fn run_on_deep_stacks(parsed: cli::Cli) -> i32 {
    // A mount waits for its stop signals in one thread; every thread must
    // inherit the block, so it comes before any thread exists.
    if matches!(parsed.command, cli::args::Command::Mount(_)) {
        cli::block_stop_signals();
    }
    // A snapshot stops cleanly on the first signal, keeping what it stored.
    if matches!(parsed.command, cli::args::Command::Snapshot(_)) {
        vault::system::interrupt::catch_stop_signals();
    }
    // Without the global pool the walk still runs, on smaller stacks.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(WALK_STACK)
        .build_global();
    let worker = std::thread::Builder::new()
        .name("vault".into())
        .stack_size(WALK_STACK)
        .spawn(move || run(parsed));
    match worker.map(|w| w.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => {
            eprintln!("vault: cannot start: {e}");
            cli::exit::FAILURE
        }
    }
}

fn run(parsed: cli::Cli) -> i32 {
    match cli::run(parsed) {
        Ok(code) => code,
        Err(err) => {
            // After a stop signal, whatever failed (a killed producer, a
            // stopped read) failed because of it.
            if let Some((line, code)) = cli::interrupted_report() {
                eprintln!("vault: {line}");
                return code;
            }
            if is_broken_pipe(&err) {
                cli::exit::OK
            } else {
                eprintln!("vault: {}", one_line(&err));
                cli::exit_code(&err)
            }
        }
    }
}

/// A closed pipe (`vault dump ... | head`) is the reader's choice, not an
/// error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        let kind = match c.downcast_ref::<vault::Error>() {
            Some(e) => e.io_kind(),
            None => c.downcast_ref::<std::io::Error>().map(|e| e.kind()),
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Errors print as one line: the chain joined with ": ". Each link says
/// only what the links after it do not (vault::Error's Display and
/// source() are made so).
fn one_line(err: &anyhow::Error) -> String {
    let parts: Vec<String> = err.chain().map(|c| c.to_string()).collect();
    parts.join(": ").replace('\n', " ")
}

/// Chunk buffers (up to a few MiB) are allocated and freed on many threads.
/// glibc raises its mmap threshold after the first such free and then keeps
/// the memory in per-thread arenas, which tripled peak memory on large
/// trees. A fixed threshold returns big buffers to the system at once.
fn limit_allocator_caching() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 3);
    }
}
