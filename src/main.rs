//! The `sallyport` binary: everything happens in [`sallyport::cli`].

fn main() -> std::process::ExitCode {
    sallyport::cli::main()
}
