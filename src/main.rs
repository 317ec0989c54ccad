fn main() -> std::process::ExitCode {
    drflow::cli::main()
}
