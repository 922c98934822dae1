//! [`Gpu`]: one adapter and device, with the pipeline cache and buffer pool on them.

use std::sync::{Arc, Mutex};

use crate::{GpuError, MatmulTiling, pipelines::PipelineCache, pool::BufferPool};

/// Which adapter [`Gpu::new`] asks for.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Prefer a discrete GPU over an integrated one (`PowerPreference::HighPerformance`).
    pub high_performance: bool,
    /// Split weight matrices into row chunks of at most this many bytes, below the
    /// adapter's binding limit, so tests can split small matrices as large ones are
    /// split on real hardware.
    pub max_weight_chunk_bytes: Option<u64>,
    /// The matmul kernel's rows per workgroup and invocations per row, instead of the
    /// default for the adapter ([`MatmulTiling::for_adapter`]).
    pub matmul_tiling: Option<MatmulTiling>,
}

/// What the runner found out about its adapter.
#[derive(Clone, Debug)]
pub struct GpuInfo {
    /// The adapter's name, driver and backend as wgpu reports them.
    pub adapter: wgpu::AdapterInfo,
    /// Largest storage buffer binding, in bytes.
    pub max_binding_bytes: u64,
    /// Largest row chunk of a weight matrix, in bytes ([`GpuOptions::max_weight_chunk_bytes`]).
    pub weight_chunk_bytes: u64,
    /// Largest buffer, in bytes.
    pub max_buffer_bytes: u64,
    /// Largest workgroup count per dispatch dimension.
    pub max_workgroups_per_dim: u32,
    /// Whether `enable f16;` shaders may run (`Features::SHADER_F16`).
    pub shader_f16: bool,
}

impl GpuInfo {
    /// Whether the adapter is a discrete GPU (what `--device auto` looks for).
    pub fn is_discrete(&self) -> bool {
        self.adapter.device_type == wgpu::DeviceType::DiscreteGpu
    }

    /// Whether the adapter runs on the CPU (lavapipe, SwiftShader, WARP).
    pub fn is_software(&self) -> bool {
        self.adapter.device_type == wgpu::DeviceType::Cpu
    }
}

/// A device and queue with everything the kernels keep on them. Cheap to share by
/// reference; every method takes `&self`.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: GpuInfo,
    pub(crate) pipelines: PipelineCache,
    pub(crate) pool: BufferPool,
    pub(crate) matmul_tiling: MatmulTiling,
    /// Set by the device-lost callback; every call checks it first.
    lost: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Gpu {
    /// Opens the preferred adapter: natively Vulkan, Metal or DX12 (`WGPU_BACKEND`,
    /// `WGPU_ADAPTER_NAME` and `WGPU_POWER_PREF` override the choice); in the browser
    /// WebGPU, detected before the instance is made (`Instance::new` cannot).
    ///
    /// # Errors
    /// [`GpuError::NoAdapter`] or [`GpuError::RequestDevice`], with the driver's words.
    pub async fn new(options: &GpuOptions) -> Result<Self, GpuError> {
        let instance = instance().await;
        let power_preference = if options.high_performance {
            wgpu::PowerPreference::HighPerformance
        } else {
            wgpu::PowerPreference::None
        };
        let adapter = adapter(&instance, power_preference).await?;
        Self::from_adapter(adapter, options).await
    }

    async fn from_adapter(adapter: wgpu::Adapter, options: &GpuOptions) -> Result<Self, GpuError> {
        let adapter_info = adapter.get_info();
        let limits = adapter.limits();
        let shader_f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("shard"),
                required_features: wgpu::Features::empty(),
                // The adapter's own limits: the defaults cap bindings at 128 MiB and
                // buffers at 256 MiB, below what most GPUs (and SwiftShader) offer.
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::RequestDevice {
                adapter: adapter_info.name.clone(),
                reason: e.to_string(),
            })?;
        let lost = Arc::new(Mutex::new(None));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            tracing::error!(?reason, %message, "GPU device lost");
            if let Ok(mut lost) = flag.lock() {
                *lost = Some(format!("{reason:?}: {message}"));
            }
        });
        device.on_uncaptured_error(Arc::new(|error: wgpu::Error| {
            tracing::error!(%error, "uncaptured GPU error");
        }));
        let binding_limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let weight_chunk_bytes = options
            .max_weight_chunk_bytes
            .map_or(binding_limit, |m| m.min(binding_limit));
        let info = GpuInfo {
            adapter: adapter_info,
            max_binding_bytes: binding_limit,
            weight_chunk_bytes,
            max_buffer_bytes: limits.max_buffer_size,
            max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
            shader_f16,
        };
        let matmul_tiling = options
            .matmul_tiling
            .unwrap_or(MatmulTiling::for_adapter(info.is_software()));
        tracing::info!(adapter = %info.adapter.name, backend = ?info.adapter.backend, "GPU ready");
        Ok(Self {
            device,
            queue,
            info,
            pipelines: PipelineCache::default(),
            pool: BufferPool::default(),
            matmul_tiling,
            lost,
        })
    }

    /// The adapter and the limits the kernels work within.
    pub fn info(&self) -> &GpuInfo {
        &self.info
    }

    /// The wgpu device, for callers that record their own passes.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// [`GpuError::DeviceLost`] once the device-lost callback has fired.
    pub fn check_lost(&self) -> Result<(), GpuError> {
        match self.lost.lock().ok().and_then(|l| l.clone()) {
            Some(reason) => Err(GpuError::DeviceLost(reason)),
            None => Ok(()),
        }
    }

    /// Runs `f` inside a validation error scope and turns what the scope caught into
    /// [`GpuError::Validation`] naming `what`.
    pub(crate) async fn validated<T>(
        &self,
        what: &str,
        f: impl FnOnce() -> T,
    ) -> Result<T, GpuError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        match scope.pop().await {
            None => Ok(value),
            Some(error) => Err(GpuError::Validation {
                what: what.to_owned(),
                message: error.to_string(),
            }),
        }
    }
}

/// The adapter named by `WGPU_ADAPTER_NAME` (natively), else the one the instance
/// prefers. wgpu's own helper panics on a name that matches nothing; this says so.
async fn adapter(
    instance: &wgpu::Instance,
    power_preference: wgpu::PowerPreference,
) -> Result<wgpu::Adapter, GpuError> {
    #[cfg(not(target_arch = "wasm32"))]
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted = wanted.to_lowercase();
        let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
            .ok_or_else(|| {
                GpuError::NoAdapter(format!(
                    "WGPU_ADAPTER_NAME={wanted:?} matches none of {names:?}"
                ))
            });
    }
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference,
            force_fallback_adapter: false,
            compatible_surface: None,
        })
        .await
        .map_err(|e| GpuError::NoAdapter(e.to_string()))
}

#[cfg(not(target_arch = "wasm32"))]
async fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::PRIMARY;
    wgpu::Instance::new(desc.with_env())
}

#[cfg(target_arch = "wasm32")]
async fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::BROWSER_WEBGPU;
    wgpu::util::new_instance_with_webgpu_detection(desc).await
}
