//! `runbook-step --supervise STATUS_LOG`: the step supervisor as a small binary of its own, so
//! that starting it costs little. See `runbook::exec::supervisor`.

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() != 3 || args[1] != "--supervise" {
        eprintln!("usage: runbook-step --supervise STATUS_LOG (started by runbook, not by hand)");
        return std::process::ExitCode::from(2);
    }
    let code = runbook::exec::supervisor::main(std::path::Path::new(&args[2]));
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}
