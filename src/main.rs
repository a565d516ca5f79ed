//! The `gatehouse` binary: a thin shim over [`gatehouse::cli`].

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
