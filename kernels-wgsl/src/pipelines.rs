//! Shader sources and the pipeline cache.
//!
//! Each kernel is a plain `.wgsl` file under `shaders/`; a pipeline's source is a few
//! `const` defines, then the files the kernel is made of, joined. The cache keys a
//! compiled pipeline by the kernel and its defines, so each (format, batch) pair is
//! compiled once per device, on first use.

use std::collections::HashMap;
use std::sync::Mutex;

use kernels_cpu::WeightFormat;

use crate::{Gpu, GpuError};

/// Reading block bytes from `u32` words.
const BYTES: &str = include_str!("../shaders/bytes.wgsl");
/// The matmul driver: one workgroup per weight row, workgroup-memory reduction.
const MATMUL: &str = include_str!("../shaders/matmul.wgsl");

/// A kernel the cache compiles: which files make its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    /// `y = W · x` for a weight format ([`crate::Gpu::matmul`]).
    Matmul(WeightFormat),
    /// The operations of [`crate::ops`], one file each.
    RmsNorm,
    Rope,
    FfnGate,
    Add,
    Scale,
    Argmax,
    /// Causal grouped-query attention ([`crate::Gpu::attention`]).
    Attention,
}

impl Kernel {
    fn files(self) -> Result<Vec<&'static str>, GpuError> {
        match self {
            Kernel::Matmul(format) => Ok(vec![BYTES, format_source(format)?, MATMUL]),
            Kernel::RmsNorm => Ok(vec![include_str!("../shaders/rms_norm.wgsl")]),
            Kernel::Rope => Ok(vec![include_str!("../shaders/rope.wgsl")]),
            Kernel::FfnGate => Ok(vec![include_str!("../shaders/ffn_gate.wgsl")]),
            Kernel::Add => Ok(vec![include_str!("../shaders/add.wgsl")]),
            Kernel::Scale => Ok(vec![include_str!("../shaders/scale.wgsl")]),
            Kernel::Argmax => Ok(vec![include_str!("../shaders/argmax.wgsl")]),
            Kernel::Attention => Ok(vec![include_str!("../shaders/attention.wgsl")]),
        }
    }

    fn label(self) -> String {
        match self {
            Kernel::Matmul(format) => format!("matmul_{}", format.name().to_lowercase()),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}

/// The file that teaches the matmul driver to read one block of `format`.
fn format_source(format: WeightFormat) -> Result<&'static str, GpuError> {
    Ok(match format {
        WeightFormat::F32 => include_str!("../shaders/format_f32.wgsl"),
        WeightFormat::F16 => include_str!("../shaders/format_f16.wgsl"),
        WeightFormat::BF16 => include_str!("../shaders/format_bf16.wgsl"),
        WeightFormat::Q8_0 => include_str!("../shaders/format_q8_0.wgsl"),
        WeightFormat::Q4_0 => include_str!("../shaders/format_q4_0.wgsl"),
        WeightFormat::Q4_1 => include_str!("../shaders/format_q4_1.wgsl"),
        WeightFormat::Tq2_0 => include_str!("../shaders/format_tq2_0.wgsl"),
        WeightFormat::I2S => include_str!("../shaders/format_i2_s.wgsl"),
        WeightFormat::Tq1_0 => return Err(GpuError::UnsupportedFormat(format)),
    })
}

/// `const NAME: u32 = VALUE;` lines, in order.
pub(crate) type Defines = Vec<(&'static str, u32)>;

/// The full WGSL source of `kernel` with `defines`.
pub(crate) fn source(kernel: Kernel, defines: &Defines) -> Result<String, GpuError> {
    let mut src = String::new();
    for (name, value) in defines {
        src.push_str(&format!("const {name}: u32 = {value}u;\n"));
    }
    for file in kernel.files()? {
        src.push_str(file);
        src.push('\n');
    }
    Ok(src)
}

/// Compiled pipelines by (kernel, defines).
#[derive(Default)]
pub(crate) struct PipelineCache {
    compiled: Mutex<HashMap<(Kernel, Defines), wgpu::ComputePipeline>>,
}

impl Gpu {
    /// The pipeline of `kernel` with `defines`, compiled on first use.
    ///
    /// # Errors
    /// [`GpuError::Validation`] if the shader does not compile on this device, and
    /// [`GpuError::UnsupportedFormat`] for a format without a kernel.
    pub(crate) async fn pipeline(
        &self,
        kernel: Kernel,
        defines: Defines,
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        let key = (kernel, defines);
        if let Some(p) = self
            .pipelines
            .compiled
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return Ok(p);
        }
        let src = source(kernel, &key.1)?;
        let label = kernel.label();
        let pipeline = self
            .validated(&label, || {
                let module = self
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(&label),
                        source: wgpu::ShaderSource::Wgsl(src.into()),
                    });
                self.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(&label),
                        layout: None,
                        module: &module,
                        entry_point: Some("main"),
                        compilation_options: wgpu::PipelineCompilationOptions::default(),
                        cache: None,
                    })
            })
            .await?;

        if let Ok(mut compiled) = self.pipelines.compiled.lock() {
            compiled.insert(key, pipeline.clone());
        }
        Ok(pipeline)
    }
}
