//! wgfuse on a `wgpu::Device` the application already made: the app's buffers become tensors
//! (no copies), and wgfuse's kernels record into the app's own compute pass, between its own
//! dispatches.

use wgfuse::kernels::softmax;
use wgfuse::{Context, DType};
use wgpu::util::DeviceExt;

const SCALE: &str = "
@group(0) @binding(0) var<storage, read_write> v: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&v)) { v[id.x] = v[id.x] * 2.0; }
}";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The application's device, made its own way.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
    let features = (wgpu::Features::SUBGROUP | wgpu::Features::IMMEDIATES | wgpu::Features::SHADER_F16) & adapter.features();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_features: features,
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;
    let ctx = Context::from_wgpu(device.clone(), queue.clone(), adapter.get_info())?;
    println!("{}", ctx.info());

    // The application's buffers: logits, and an output.
    let (rows, n) = (8usize, 1000usize);
    let logits: Vec<f32> = (0..rows * n).map(|i| ((i * 37) % 101) as f32 / 25.0).collect();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let inp = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("app logits"),
        contents: bytemuck::cast_slice(&logits),
        usage,
    });
    let out = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app probs"),
        size: (rows * n * 4) as u64,
        usage,
        mapped_at_creation: false,
    });
    let x = ctx.tensor_from_buffer(&inp, 0, &[rows, n], DType::F32)?;
    let y = ctx.tensor_from_buffer(&out, 0, &[rows, n], DType::F32)?;

    // The application's own kernel (doubles the logits), then wgfuse's softmax, in one pass.
    let module = device
        .create_shader_module(wgpu::ShaderModuleDescriptor { label: Some("app scale"), source: wgpu::ShaderSource::Wgsl(SCALE.into()) });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("app scale"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let bg = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry { binding: 0, resource: inp.as_entire_binding() }],
    });
    let mut enc = device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(((rows * n) as u32).div_ceil(64), 1, 1);
        softmax::encode(&ctx, &mut pass, &softmax::Args { x: &x, y: &y, variant: None })?;
    }
    queue.submit([enc.finish()]);

    // Check against the reference of softmax(2 · logits).
    let doubled: Vec<f64> = logits.iter().map(|&v| 2.0 * v as f64).collect();
    let want = wgfuse::reference::softmax(ndarray::ArrayD::from_shape_vec(vec![rows, n], doubled)?.view());
    let got = y.to_vec::<f32>()?;
    let err = got.iter().zip(want.iter()).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max);
    println!("softmax of the app's doubled logits, in the app's pass: max error {err:.1e}");
    assert!(err < 1e-6);
    Ok(())
}
