//! `runbook-step STATUS_LOG LOG KEY COMMAND`: the step wrapper as a small binary of its own, so that
//! starting it costs little next to the step it runs. See `runbook::exec::wrapper`.

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() != 5 {
        eprintln!(
            "usage: runbook-step STATUS_LOG LOG KEY COMMAND (started by runbook, not by hand)"
        );
        return std::process::ExitCode::from(2);
    }
    let code = runbook::exec::wrapper::main(
        std::path::Path::new(&args[1]),
        std::path::Path::new(&args[2]),
        &args[3].to_string_lossy(),
        &args[4].to_string_lossy(),
    );
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}
