mod cli;

fn main() {
    limit_allocator_caching();
    let parsed = cli::parse();
    let code = match cli::run(parsed) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`vault dump ... | head`) is the reader's choice.
            let broken_pipe = err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
                    || c.to_string().contains("Broken pipe")
            });
            if broken_pipe {
                cli::exit::OK
            } else {
                eprintln!("vault: {}", one_line(&err));
                cli::exit_code(&err)
            }
        }
    };
    std::process::exit(code);
}

/// Errors print as one line: the chain joined with ": ".
fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
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
