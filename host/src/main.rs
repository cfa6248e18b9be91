//! The `weir` command. Everything happens in [`weir::cli`]; this only turns the outcome
//! into an exit code.

fn main() -> std::process::ExitCode {
    weir::cli::run()
}
