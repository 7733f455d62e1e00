//! `cargo xtask test`: everything CI checks, in the order that fails fastest: formatting,
//! lints, stale SPIR-V, the MSL kernels on the CPU emulation, the test suite (unit, integration, property and doc tests), the examples, and a quick
//! compare run.

use std::process::Command;

fn cargo(args: &[&str]) -> Result<(), String> {
    println!("\n==> cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args(args).status().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed ({status})", args.join(" ")))
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--no-compare");
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])?;
    // The committed SPIR-V is what shaders/glsl compiles to; the MSL runs on the CPU emulation.
    cargo(&["run", "--release", "-p", "xtask", "--", "shaders", "--check"])?;
    cargo(&["run", "--release", "-p", "xtask", "--", "check-msl"])?;
    cargo(&["test", "--workspace", "--all-features"])?;
    for example in ["quickstart", "own_device", "llama_block"] {
        cargo(&["run", "--release", "--example", example])?;
    }
    if !quick {
        cargo(&["run", "--release", "-p", "xtask", "--", "compare-backends", "--quick"])?;
    }
    println!("\nall checks passed");
    Ok(())
}
