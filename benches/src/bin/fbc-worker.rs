//! `facebook-connector-worker` built inside the benchmark package, so that the end-to-end
//! benchmark (`benches/engine.rs`) runs the real worker as its own process (its RSS and CPU
//! time measured apart from the fakes) without a nested cargo build. Same `main` as the
//! worker binary.

fn main() -> std::process::ExitCode {
    facebook_connector_worker::cli::main()
}
