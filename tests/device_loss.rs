//! A destroyed device: every op after it returns a typed error instead of aborting.
//!
//! In a test binary of its own: cargo runs test binaries one at a time, and on the NVIDIA
//! driver (H200, Vulkan 580) destroying a device while other threads of the same process call
//! the driver on their devices can deadlock inside the driver (BENCHMARKS.md, session 24: the
//! context tests on 8 threads hung in about one run in four, with this test or without it).

mod common;

use common::*;
use wgfuse::{Context, Error};

#[test]
fn device_loss_is_an_error_not_an_abort() {
    let (device, queue, info) = user_device(wgpu::Features::SUBGROUP | wgpu::Features::IMMEDIATES, None);
    let ctx = Context::from_wgpu(device.clone(), queue, info).unwrap();
    let x = ctx.tensor(&[1.0f32; 8], &[2, 4]).unwrap();
    assert!(ctx.softmax(&x).unwrap().to_vec::<f32>().is_ok());
    device.destroy();
    let _ = device.poll(wgpu::PollType::Poll);
    let r = ctx.softmax(&x).and_then(|y| y.to_vec::<f32>());
    assert!(matches!(r, Err(Error::DeviceLost(_)) | Err(Error::Validation(_))), "{r:?}");
    assert!(ctx.tensor(&[1.0f32; 8], &[2, 4]).and_then(|t| ctx.softmax(&t)).and_then(|y| y.to_vec::<f32>()).is_err());
}
