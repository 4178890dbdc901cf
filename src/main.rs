use clap::Parser;

mod cli;

fn main() {
    let parsed = cli::Cli::parse();
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
