//! predictd's entry point: everything lives in the library; see `lib.rs`.

fn main() -> std::process::ExitCode {
    predictd::cli::main()
}
