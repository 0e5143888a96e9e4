//! The `fraudwall` binary: see [`fraudwall::cli`].

fn main() -> std::process::ExitCode {
    fraudwall::cli::main()
}
