//! GPU timing for benchmarks and the compare tool: timestamp queries around each run, a
//! warm-up that lets the GPU reach its clocks, and a cold L2 before every timed run.

use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::{Error, Result};

/// A closure that records work into a compute pass.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::softmax;
/// use wgfuse::timing::Timer;
/// let ctx = wgfuse::Context::new()?;
/// let (x, y) = (ctx.tensor(&[0.5f32; 1024], &[4, 256])?, ctx.tensor(&[0.0f32; 1024], &[4, 256])?);
/// let mut run = |p: &mut wgpu::ComputePass<'_>| softmax::encode(&ctx, p, &softmax::Args { x: &x, y: &y, variant: None });
/// let mut timer = Timer::new(&ctx, 0)?;
/// let mut fs: Vec<&mut wgfuse::timing::Recorder<'_>> = vec![&mut run];
/// assert_eq!(timer.time_interleaved(2, &mut fs)?[0].len(), 2);
/// # Ok(()) }
/// ```
pub type Recorder<'a> = dyn FnMut(&mut wgpu::ComputePass<'_>) -> Result<()> + 'a;

/// How a [`Timer`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let timer = wgfuse::timing::Timer::new(&ctx, 0)?;
/// let clock = timer.clock(); // Gpu with TIMESTAMP_QUERY, else Wall
/// println!("{clock:?}");
/// # Ok(()) }
/// ```
pub enum Clock {
    /// Timestamp queries written at the start and end of each run's compute pass.
    Gpu,
    /// Host wall clock around submit-and-wait (adapters without TIMESTAMP_QUERY).
    Wall,
}

/// Times closures that record work into a compute pass.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::softmax;
/// use wgfuse::timing::Timer;
/// let ctx = wgfuse::Context::new()?;
/// let (x, y) = (ctx.tensor(&[0.5f32; 1024], &[4, 256])?, ctx.tensor(&[0.0f32; 1024], &[4, 256])?);
/// let mut run = |p: &mut wgpu::ComputePass<'_>| softmax::encode(&ctx, p, &softmax::Args { x: &x, y: &y, variant: None });
/// let mut timer = Timer::new(&ctx, 0)?;
/// assert_eq!(timer.time(3, &mut run)?.len(), 3);
/// # Ok(()) }
/// ```
pub struct Timer {
    ctx: Context,
    clock: Clock,
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
    scratch: Option<wgpu::Buffer>,
    lead: Option<(crate::Tensor, crate::Tensor)>,
    /// When this timer's GPU work last finished.
    last_busy: Option<Instant>,
    resume: Duration,
}

/// Timed runs per submission (each takes two timestamps).
const BATCH: u32 = 128;

/// A GPU idle for longer than this (by its timer's knowledge) gets [`RESUME_WARM_UP`].
pub const IDLE_LIMIT: Duration = Duration::from_millis(500);

/// The least warm-up after an idle GPU. On the H200 (Vulkan, driver 580), memory-bound work
/// after 3 s with nothing to do ran at a third of its speed for 210–360 ms (RMSNorm f16
/// 4096 x 32000: 455 µs a run, then 142 from one run to the next, in four trials;
/// `cargo xtask ablate --ramp`), then at full speed; after 1 s idle it ran at full speed at
/// once. A 200 ms warm-up after several seconds of host work (making a case's inputs) could
/// end inside that slow phase.
pub const RESUME_WARM_UP: Duration = Duration::from_millis(600);

impl Timer {
    /// A timer that flushes the L2 between runs by overwriting `flush_bytes` of scratch memory
    /// (0: no flush, a warm cache).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::softmax;
    /// use wgfuse::timing::{median, Timer};
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[0.5f32; 64 * 256], &[64, 256])?;
    /// let y = ctx.tensor(&[0.0f32; 64 * 256], &[64, 256])?;
    /// let mut timer = Timer::new(&ctx, 1 << 20)?.with_resume(std::time::Duration::ZERO);
    /// let mut run = |pass: &mut wgpu::ComputePass<'_>| softmax::encode(&ctx, pass, &softmax::Args { x: &x, y: &y, variant: None });
    /// timer.warm_up(std::time::Duration::from_millis(10), &mut run)?;
    /// let us = median(&timer.time(5, &mut run)?);
    /// assert!(us > 0.0);
    /// # Ok(()) }
    /// ```
    pub fn new(ctx: &Context, flush_bytes: u64) -> Result<Timer> {
        let device = ctx.device();
        let clock = if ctx.has(wgpu::Features::TIMESTAMP_QUERY) { Clock::Gpu } else { Clock::Wall };
        let queries = if clock == Clock::Gpu {
            Some(ctx.scoped(|| {
                let set = device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("wgfuse timer"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * BATCH,
                });
                let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgfuse timer resolve"),
                    size: 16 * BATCH as u64,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                let read = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgfuse timer read"),
                    size: 16 * BATCH as u64,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                (set, resolve, read)
            })?)
        } else {
            None
        };
        let flush = flush_bytes.min(ctx.info().limits.max_buffer_size) & !3;
        let scratch = if flush > 0 {
            Some(ctx.scoped(|| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgfuse l2 flush"),
                    size: flush,
                    usage: wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })?)
        } else {
            None
        };
        Ok(Timer { ctx: ctx.clone(), clock, queries, scratch, lead: None, last_busy: None, resume: RESUME_WARM_UP })
    }

    /// Starts every timed run's pass with an untimed 16-byte copy on the timer's own buffers
    /// and writes the timestamps inside the pass, around the run only (adapters with
    /// TIMESTAMP_QUERY_INSIDE_PASSES; others keep the pass timestamps). The first dispatch of
    /// a pass carries a fixed cost that a run inside a longer pass does not pay (see
    /// `cargo xtask ablate --floor`); with the lead-in, that cost falls outside the timed region.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::softmax;
    /// use wgfuse::timing::Timer;
    /// let ctx = wgfuse::Context::new()?;
    /// let (x, y) = (ctx.tensor(&[0.5f32; 1024], &[4, 256])?, ctx.tensor(&[0.0f32; 1024], &[4, 256])?);
    /// let mut timer = Timer::new(&ctx, 1 << 20)?.with_lead_in()?;
    /// let t = timer.time(3, |p| softmax::encode(&ctx, p, &softmax::Args { x: &x, y: &y, variant: None }))?;
    /// assert!(t.iter().all(|&us| us > 0.0));
    /// # Ok(()) }
    /// ```
    pub fn with_lead_in(mut self) -> Result<Timer> {
        if self.ctx.has(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES) {
            self.lead = Some((self.ctx.tensor(&[0.0f32; 4], &[4])?, self.ctx.tensor(&[0.0f32; 4], &[4])?));
        }
        Ok(self)
    }

    /// Whether timed runs start after an untimed lead-in dispatch ([`Timer::with_lead_in`]).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// assert!(!wgfuse::timing::Timer::new(&ctx, 0)?.lead_in());
    /// # Ok(()) }
    /// ```
    pub fn lead_in(&self) -> bool {
        self.lead.is_some()
    }

    /// What the timer measures with.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let timer = wgfuse::timing::Timer::new(&ctx, 0)?;
    /// let gpu = ctx.has(wgpu::Features::TIMESTAMP_QUERY);
    /// assert_eq!(timer.clock() == wgfuse::timing::Clock::Gpu, gpu);
    /// # Ok(()) }
    /// ```
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Keeps the GPU busy with `f` for at least `min` of wall time, so that it leaves its idle
    /// clocks: batches of about 10 ms of work, the next one always queued before the previous
    /// one finishes, so the GPU never idles in between (a GPU that idles drops its clocks again).
    /// When this timer has not had the GPU busy within [`IDLE_LIMIT`] (or never has), the
    /// warm-up lasts at least [`Timer::resume`] ([`RESUME_WARM_UP`] unless set). Returns how
    /// many runs that took.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::softmax;
    /// use wgfuse::timing::Timer;
    /// let ctx = wgfuse::Context::new()?;
    /// let (x, y) = (ctx.tensor(&[0.5f32; 1024], &[4, 256])?, ctx.tensor(&[0.0f32; 1024], &[4, 256])?);
    /// let mut run = |p: &mut wgpu::ComputePass<'_>| softmax::encode(&ctx, p, &softmax::Args { x: &x, y: &y, variant: None });
    /// let mut timer = Timer::new(&ctx, 0)?.with_resume(std::time::Duration::ZERO);
    /// assert!(timer.warm_up(std::time::Duration::from_millis(5), &mut run)? >= 1);
    /// # Ok(()) }
    /// ```
    pub fn warm_up(&mut self, min: Duration, mut f: impl FnMut(&mut wgpu::ComputePass<'_>) -> Result<()>) -> Result<usize> {
        // Pending ops of the Context first, so they do not run (and cool the GPU) in between.
        self.ctx.sync()?;
        let idle = self.last_busy.is_none_or(|t| t.elapsed() > IDLE_LIMIT);
        let min = if idle { min.max(self.resume) } else { min };
        let device = self.ctx.device().clone();
        let record = |f: &mut dyn FnMut(&mut wgpu::ComputePass<'_>) -> Result<()>, n: usize| -> Result<wgpu::CommandEncoder> {
            let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("warm-up") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
                for _ in 0..n {
                    f(&mut pass)?;
                }
            }
            Ok(enc)
        };
        // One run, waited for, to size the batches (its host overhead makes this an upper
        // bound of the run time, so batches err on the short side; queuing hides that).
        let t = Instant::now();
        self.submit_wait(record(&mut f, 1)?)?;
        let one = t.elapsed().as_secs_f64().max(1e-6);
        let batch = ((0.010 / one) as usize).clamp(1, 4096);
        let start = Instant::now();
        let mut runs = 1usize;
        let mut queued: Option<wgpu::SubmissionIndex> = None;
        while start.elapsed() < min {
            let enc = record(&mut f, batch)?;
            let queue = self.ctx.queue();
            let idx = self.ctx.scoped(|| queue.submit([enc.finish()]))?;
            if let Some(prev) = queued.replace(idx) {
                self.wait(prev)?;
            }
            runs += batch;
        }
        if let Some(prev) = queued {
            self.wait(prev)?;
        }
        self.last_busy = Some(Instant::now());
        Ok(runs)
    }

    /// Sets the least warm-up after an idle GPU ([`RESUME_WARM_UP`] by default; zero for
    /// devices whose speed does not depend on what ran before, such as a CPU rasterizer).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let timer = wgfuse::timing::Timer::new(&ctx, 0)?.with_resume(std::time::Duration::ZERO);
    /// assert_eq!(timer.resume(), std::time::Duration::ZERO);
    /// # Ok(()) }
    /// ```
    pub fn with_resume(mut self, resume: Duration) -> Timer {
        self.resume = resume;
        self
    }

    /// The least warm-up after an idle GPU.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// assert_eq!(wgfuse::timing::Timer::new(&ctx, 0)?.resume(), wgfuse::timing::RESUME_WARM_UP);
    /// # Ok(()) }
    /// ```
    pub fn resume(&self) -> Duration {
        self.resume
    }

    fn wait(&self, idx: wgpu::SubmissionIndex) -> Result<()> {
        self.ctx
            .device()
            .poll(wgpu::PollType::Wait { submission_index: Some(idx), timeout: None })
            .map_err(|e| Error::Readback(e.to_string()))?;
        Ok(())
    }

    fn submit_wait(&self, enc: wgpu::CommandEncoder) -> Result<()> {
        let queue = self.ctx.queue();
        let idx = self.ctx.scoped(|| queue.submit([enc.finish()]))?;
        self.wait(idx)
    }

    /// Times `runs` runs of `f`, each in its own compute pass (cold L2 before each when the
    /// timer flushes), and returns each run's time in microseconds.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::softmax;
    /// use wgfuse::timing::Timer;
    /// let ctx = wgfuse::Context::new()?;
    /// let (x, y) = (ctx.tensor(&[0.5f32; 1024], &[4, 256])?, ctx.tensor(&[0.0f32; 1024], &[4, 256])?);
    /// let mut run = |p: &mut wgpu::ComputePass<'_>| softmax::encode(&ctx, p, &softmax::Args { x: &x, y: &y, variant: None });
    /// let mut timer = Timer::new(&ctx, 0)?;
    /// let times = timer.time(4, &mut run)?;
    /// assert!(times.iter().all(|&t| t > 0.0));
    /// # Ok(()) }
    /// ```
    pub fn time(&mut self, runs: usize, mut f: impl FnMut(&mut wgpu::ComputePass<'_>) -> Result<()>) -> Result<Vec<f64>> {
        self.ctx.sync()?;
        let mut out = Vec::with_capacity(runs);
        while out.len() < runs {
            let n = (runs - out.len()).min(BATCH as usize) as u32;
            match self.clock {
                Clock::Gpu => out.extend(self.batch_gpu(n, &mut f)?),
                Clock::Wall => {
                    for _ in 0..n {
                        out.push(self.one_wall(&mut f)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Times several closures interleaved: each run times every closure once, in turn (each
    /// after its own L2 flush), so all of them see the same clocks and the same neighbours on
    /// a shared GPU. Returns, per closure, its runs' times in microseconds. Ratios between
    /// closures measured this way hold even when the GPU's speed drifts during the runs.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::softmax;
    /// use wgfuse::timing::Timer;
    /// let ctx = wgfuse::Context::new()?;
    /// let (x, y) = (ctx.tensor(&[0.5f32; 1024], &[4, 256])?, ctx.tensor(&[0.0f32; 1024], &[4, 256])?);
    /// let mut run = |p: &mut wgpu::ComputePass<'_>| softmax::encode(&ctx, p, &softmax::Args { x: &x, y: &y, variant: None });
    /// let mut timer = Timer::new(&ctx, 0)?;
    /// let mut twice = |p: &mut wgpu::ComputePass<'_>| { run(p)?; run(p) };
    /// let mut single = |p: &mut wgpu::ComputePass<'_>| softmax::encode(&ctx, p, &softmax::Args { x: &x, y: &y, variant: None });
    /// let mut fs: Vec<&mut wgfuse::timing::Recorder<'_>> = vec![&mut single, &mut twice];
    /// let t = timer.time_interleaved(3, &mut fs)?;
    /// assert_eq!((t[0].len(), t[1].len()), (3, 3));
    /// # Ok(()) }
    /// ```
    pub fn time_interleaved(&mut self, runs: usize, fs: &mut [&mut Recorder<'_>]) -> Result<Vec<Vec<f64>>> {
        let k = fs.len().max(1);
        let mut idx = 0usize;
        let flat = self.time(runs * k, |pass| {
            let r = (fs[idx % k])(pass);
            idx += 1;
            r
        })?;
        let mut out = vec![Vec::with_capacity(runs); k];
        for (i, t) in flat.into_iter().enumerate() {
            out[i % k].push(t);
        }
        Ok(out)
    }

    fn batch_gpu(&mut self, n: u32, f: &mut impl FnMut(&mut wgpu::ComputePass<'_>) -> Result<()>) -> Result<Vec<f64>> {
        let Some((set, resolve, read)) = &self.queries else { return Err(Error::Readback("no query set".into())) };
        let mut enc = self.ctx.device().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timed") });
        for i in 0..n {
            if let Some(s) = &self.scratch {
                enc.clear_buffer(s, 0, None);
            }
            if let Some((a, b)) = &self.lead {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("timed run"), timestamp_writes: None });
                crate::kernels::copy::encode(&self.ctx, &mut pass, a, b)?;
                pass.write_timestamp(set, 2 * i);
                f(&mut pass)?;
                pass.write_timestamp(set, 2 * i + 1);
                continue;
            }
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timed run"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(2 * i),
                    end_of_pass_write_index: Some(2 * i + 1),
                }),
            });
            f(&mut pass)?;
        }
        enc.resolve_query_set(set, 0..2 * n, resolve, 0);
        enc.copy_buffer_to_buffer(resolve, 0, read, 0, 16 * n as u64);
        self.submit_wait(enc)?;
        self.last_busy = Some(Instant::now());
        let (tx, rx) = std::sync::mpsc::channel();
        read.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.ctx.device().poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Readback(e.to_string()))?;
        rx.recv().map_err(|e| Error::Readback(e.to_string()))?.map_err(|e| Error::Readback(e.to_string()))?;
        let period = self.ctx.queue().get_timestamp_period() as f64;
        let times = {
            let view = read.slice(..).get_mapped_range().map_err(|e| Error::Readback(format!("{e:?}")))?;
            let ticks: &[u64] = bytemuck::cast_slice(&view[..16 * n as usize]);
            ticks.chunks(2).map(|t| t[1].wrapping_sub(t[0]) as f64 * period / 1000.0).collect()
        };
        read.unmap();
        Ok(times)
    }

    fn one_wall(&mut self, f: &mut impl FnMut(&mut wgpu::ComputePass<'_>) -> Result<()>) -> Result<f64> {
        if let Some(s) = &self.scratch {
            let mut enc = self.ctx.device().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("flush") });
            enc.clear_buffer(s, 0, None);
            self.submit_wait(enc)?;
        }
        let mut enc = self.ctx.device().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timed") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            f(&mut pass)?;
        }
        let t = Instant::now();
        self.submit_wait(enc)?;
        Ok(t.elapsed().as_secs_f64() * 1e6)
    }
}

/// The median of `v` (NaN when empty).
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// assert_eq!(wgfuse::timing::median(&[3.0, 1.0, 2.0]), 2.0);
/// # Ok(()) }
/// ```
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}
