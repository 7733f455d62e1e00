//! `cargo xtask shaders [--check]`: compiles the hand-written GLSL kernels
//! (`shaders/glsl/*.comp`) to the SPIR-V the `spirv` feature embeds (`shaders/spirv/*.spv`), one
//! file per entry of `wgfuse::shaders::NATIVE_KERNELS` (passthrough SPIR-V takes no pipeline
//! constants, so each variant is compiled with its own macros). `--check` compiles to a
//! temporary folder and fails when a committed file differs, is missing or is left over.
//!
//! Needs `glslc` (Debian's `glslc` package). A new kernel's `.spv` does not exist before its
//! first compile, and the default xtask build embeds every `.spv`: bootstrap it with
//! `cargo run -p xtask --no-default-features -- shaders`.

use std::path::{Path, PathBuf};
use std::process::Command;

use wgfuse::shaders::NATIVE_KERNELS;

const TARGET_ENV: &str = "--target-env=vulkan1.1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compile(kernel: &wgfuse::shaders::NativeKernel, out: &Path) -> Result<(), String> {
    let glsl = root().join("shaders/glsl");
    let mut cmd = Command::new("glslc");
    cmd.arg(TARGET_ENV).arg("-O").arg("-I").arg(&glsl);
    for d in kernel.defines {
        cmd.arg(format!("-D{d}"));
    }
    cmd.arg(glsl.join(format!("{}.comp", kernel.glsl))).arg("-o").arg(out);
    let output = cmd.output().map_err(|e| format!("running glslc ({e}); install it: apt-get install glslc"))?;
    if !output.status.success() {
        return Err(format!("glslc failed for {}:\n{}", kernel.name, String::from_utf8_lossy(&output.stderr)));
    }
    Ok(())
}

pub fn run(args: &[String]) -> Result<(), String> {
    let check = args.iter().any(|a| a == "--check");
    let committed = root().join("shaders/spirv");
    let tmp = std::env::temp_dir().join(format!("wgfuse-spirv-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&committed).map_err(|e| e.to_string())?;
    let mut stale = Vec::new();
    for k in NATIVE_KERNELS {
        let file = format!("{}.spv", k.name);
        let fresh = tmp.join(&file);
        compile(k, &fresh)?;
        let new = std::fs::read(&fresh).map_err(|e| e.to_string())?;
        let old = std::fs::read(committed.join(&file)).ok();
        if old.as_deref() != Some(new.as_slice()) {
            stale.push(file.clone());
            if !check {
                std::fs::write(committed.join(&file), &new).map_err(|e| e.to_string())?;
            }
        }
    }
    // Files no kernel produces any more.
    for entry in std::fs::read_dir(&committed).map_err(|e| e.to_string())? {
        let name = entry.map_err(|e| e.to_string())?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".spv") && !NATIVE_KERNELS.iter().any(|k| format!("{}.spv", k.name) == name) {
            stale.push(format!("{name} (no kernel)"));
            if !check {
                std::fs::remove_file(committed.join(&name)).map_err(|e| e.to_string())?;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    match (check, stale.is_empty()) {
        (_, true) => {
            println!("{} SPIR-V kernels up to date", NATIVE_KERNELS.len());
            Ok(())
        }
        (true, false) => Err(format!("stale SPIR-V (run `cargo xtask shaders`): {}", stale.join(", "))),
        (false, false) => {
            println!("wrote {} of {} SPIR-V kernels: {}", stale.len(), NATIVE_KERNELS.len(), stale.join(", "));
            Ok(())
        }
    }
}
