//! `cargo xtask test`: everything CI checks, in the order that fails fastest: formatting,
//! lints, stale SPIR-V, the MSL kernels on the CPU emulation, the test suite (unit, integration, property and doc tests), the examples, and a quick
//! compare run.

use std::process::Command;

fn cargo(args: &[&str]) -> Result<(), String> {
    cargo_env(args, &[])
}

fn cargo_env(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    println!("\n==> {}cargo {}", shown.concat(), args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed ({status})", args.join(" ")))
    }
}

/// One test thread on NVIDIA's Vulkan driver, unless `RUST_TEST_THREADS` is set: with 8 test
/// threads on an H200 (driver 580), the context tests hung in about one run in four, inside the
/// driver, when one test's device was destroyed while other tests called the driver
/// (BENCHMARKS.md, session 24). Other drivers keep cargo's default.
fn test_threads() -> Vec<(&'static str, &'static str)> {
    const NVIDIA: u32 = 0x10de;
    let nvidia = wgfuse::Context::adapters(&wgfuse::ContextOptions::default())
        .map(|all| all.iter().any(|a| a.vendor == NVIDIA && a.backend == wgpu::Backend::Vulkan))
        .unwrap_or(false);
    if nvidia && std::env::var_os("RUST_TEST_THREADS").is_none() {
        println!("\nNVIDIA Vulkan adapter: the tests run on one thread (its driver deadlocks when a device is destroyed while other threads use theirs)");
        vec![("RUST_TEST_THREADS", "1")]
    } else {
        Vec::new()
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--no-compare");
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])?;
    // The committed SPIR-V is what shaders/glsl compiles to; the MSL runs on the CPU emulation.
    cargo(&["run", "--release", "-p", "xtask", "--", "shaders", "--check"])?;
    cargo(&["run", "--release", "-p", "xtask", "--", "check-msl"])?;
    cargo_env(&["test", "--workspace", "--all-features"], &test_threads())?;
    for example in ["quickstart", "own_device", "llama_block"] {
        cargo(&["run", "--release", "--example", example])?;
    }
    if !quick {
        cargo(&["run", "--release", "-p", "xtask", "--", "compare-backends", "--quick"])?;
    }
    println!("\nall checks passed");
    Ok(())
}
