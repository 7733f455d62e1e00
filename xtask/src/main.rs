//! Project tasks: `cargo xtask <task>`.
//!
//! - `tune`: times every kernel variant per shape (the data behind the variant rules).
//! - `ablate`: variants that leave one stage out (what holds the kernels that miss targets).
//! - `info`: the adapter wgfuse picks and what it offers.
//! - `test`: everything CI runs (fmt, clippy, the test suite, a quick compare run).
//! - `compare-backends`: every op × dtype × shape × backend on the chosen adapter, timed on
//!   the GPU, with the bandwidth bound, errors vs the CPU reference and speed-ups.
//! - `shaders [--check]`: compile `shaders/glsl/*.comp` to SPIR-V (glslc); `--check` fails
//!   when the committed `.spv` files are stale.
//! - `probe FILE.wgsl`: times a WGSL file's entry points against a copy of the same bytes.
//! - `shader-stats`: the Vulkan driver's compile statistics (registers, shared memory, spills)
//!   of every WGSL kernel the library picks for the benchmark shapes.
//! - `check-msl`: compile every `.metal` against our Metal-stdlib shim and run the kernels on
//!   the CPU against the references.

mod ablate;
mod check_msl;
mod compare;
mod probe;
mod shaders;
mod stats;
mod test;
mod tune;
mod util;

use std::process::ExitCode;

/// Prints what the chosen adapter offers (features, limits, subgroup sizes).
fn info() -> Result<(), String> {
    let ctx = wgfuse::Context::new().map_err(|e| e.to_string())?;
    println!("{}", ctx.info());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("usage: cargo xtask <compare-backends|test> [options]");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match task.as_str() {
        "compare-backends" => compare::run(rest),
        "test" => test::run(rest),
        "tune" => tune::run(rest),
        "ablate" => ablate::run(rest),
        "info" => info(),
        "shaders" => shaders::run(rest),
        "check-msl" => check_msl::run(rest),
        "probe" => probe::run(rest),
        "shader-stats" => stats::run(rest),
        other => Err(format!(
            "unknown task {other:?}; tasks: compare-backends, test, tune, ablate, probe, shader-stats, info, shaders, check-msl"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
