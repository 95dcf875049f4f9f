//! The `reef` binary (DESIGN §6): everything lives in
//! [`reef_admin::cli`]; this file only hands over the exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    reef_admin::cli::main()
}
