//! Every WGSL file parses and validates with naga (no GPU needed), with the constants each
//! variant overrides resolved; the native kernel table agrees with the native row forms.

use wgfuse::shaders::ALL_SHADERS;

#[test]
fn every_wgsl_validates() {
    for shader in ALL_SHADERS {
        let src = shader.wgsl();
        let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{}.wgsl: {}", shader.name(), e.emit_to_string(src)));
        let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
        v.subgroup_stages(naga::valid::ShaderStages::COMPUTE);
        v.subgroup_operations(naga::valid::SubgroupOperationSet::all());
        if let Err(e) = v.validate(&module) {
            panic!("{}.wgsl: {}", shader.name(), e.emit_to_string(src));
        }
        assert!(!module.entry_points.is_empty() || src.trim().is_empty(), "{} has no entry points", shader.name());
    }
}

/// Every native row form the backend can pick or accept names a kernel in
/// `shaders::NATIVE_KERNELS`, compiled with that form's threads and chunk count, and every row
/// kernel in the table is such a form (the three lists: `kernels::NATIVE_ROW_FORMS`, the table,
/// and `ROW_FORMS` in shaders/msl/rows.h.metal, which `cargo xtask check-msl` runs), or one of
/// softmax's persistent f16 kernels (1024 threads, 4 or 8 chunks a thread).
#[test]
fn native_row_forms_and_kernels_agree() {
    use wgfuse::kernels::{native_row_forms, Op, PipelineKey};
    use wgfuse::shaders::NATIVE_KERNELS;
    let mut named = std::collections::HashSet::new();
    for op in [Op::Softmax, Op::RmsNorm, Op::AddRmsNorm] {
        for dtype in [wgfuse::DType::F32, wgfuse::DType::F16] {
            // Rows of one chunk: every form holds them.
            for v in native_row_forms(4, 8, 1024) {
                let name = PipelineKey::new(op, v, dtype, wgfuse::Backend::Native).entry_point();
                let k = NATIVE_KERNELS.iter().find(|k| k.name == name).unwrap_or_else(|| panic!("no native kernel {name}"));
                let has = |d: String| k.defines.iter().any(|x| *x == d);
                assert_eq!(k.workgroup, v.wg, "{name}");
                assert!(has(format!("WG={}", v.wg)), "{name}: {:?}", k.defines);
                if v.kind == wgfuse::kernels::Kind::Online {
                    assert!(has("LOOP".into()), "{name}: {:?}", k.defines);
                } else {
                    assert!(has(format!("KMAX={}", v.chunks)), "{name}: {:?}", k.defines);
                    assert_eq!(has("SUB".into()), v.threads == 0, "{name}: {:?}", k.defines);
                }
                assert_eq!(has("F16".into()), dtype == wgfuse::DType::F16, "{name}");
                assert_eq!(has("ADD".into()), op == Op::AddRmsNorm, "{name}");
                named.insert(name);
            }
        }
    }
    for k in [4u32, 8] {
        let v = wgfuse::kernels::Variant { kind: wgfuse::kernels::Kind::Persist, wg: 1024, threads: 1024, chunks: k, mode: 0 };
        let name = PipelineKey::new(Op::Softmax, v, wgfuse::DType::F16, wgfuse::Backend::Native).entry_point();
        let kernel = NATIVE_KERNELS.iter().find(|x| x.name == name).unwrap_or_else(|| panic!("no native kernel {name}"));
        assert_eq!(kernel.workgroup, 1024, "{name}");
        for d in ["WG=1024".to_string(), format!("KMAX={k}"), "PERSIST".into(), "F16".into()] {
            assert!(kernel.defines.contains(&d.as_str()), "{name}: {:?}", kernel.defines);
        }
        named.insert(name);
    }
    let rows: Vec<_> = NATIVE_KERNELS.iter().filter(|k| !k.name.starts_with("lora")).map(|k| k.name.to_string()).collect();
    assert_eq!(rows.len(), named.len(), "row kernels in the table that no form names");
    assert!(rows.iter().all(|n| named.contains(n)));
}
