//! [`GpuMatrix`]: a weight matrix uploaded as its GGUF block bytes.

use kernels_cpu::{QMatrix, WeightFormat};

use crate::{Gpu, GpuError};

/// Row chunks of one weight matrix in storage buffers, as the file holds them: the
/// GGUF block bytes of rows `row0..row0 + rows` as little-endian `u32` words, padded to
/// whole words plus one spare word (the shaders join two words to read fields that
/// straddle a word boundary). A matrix larger than the adapter's binding limit
/// (128 MiB on lavapipe) is split by rows, each chunk its own binding and dispatch.
///
/// Nothing is repacked: GPU memory holds the tensor's own bytes plus at most 7 bytes
/// per chunk, and 24 bytes of parameters per chunk.
pub struct GpuMatrix {
    pub(crate) format: WeightFormat,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) chunks: Vec<Chunk>,
}

pub(crate) struct Chunk {
    /// The rows' bytes as words.
    pub(crate) weights: wgpu::Buffer,
    /// The shader's `Params` for this chunk.
    pub(crate) params: wgpu::Buffer,
    /// Rows of this chunk.
    pub(crate) rows: usize,
}

impl std::fmt::Debug for GpuMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuMatrix")
            .field("format", &self.format)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

/// The shader's `Params` (matmul.wgsl), 24 bytes, padded to 32 for the uniform binding.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    row_bytes: u32,
    out_row0: u32,
    y_stride: u32,
    scale: f32,
    _pad: [u32; 2],
}

fn to_u32(value: usize, what: &str) -> Result<u32, GpuError> {
    u32::try_from(value).map_err(|_| GpuError::TooLarge {
        what: what.to_owned(),
        bytes: value as u64,
        limit: u64::from(u32::MAX),
    })
}

impl GpuMatrix {
    /// Uploads `w`'s bytes. The matrix should have been validated at load
    /// ([`QMatrix::validate`]), as for the CPU kernels.
    ///
    /// # Errors
    /// [`GpuError::UnsupportedFormat`] for TQ1_0; [`GpuError::TooLarge`] if one row does
    /// not fit a binding or a shape does not fit the shaders' `u32` arithmetic.
    pub fn upload(gpu: &Gpu, w: &QMatrix<'_>) -> Result<Self, GpuError> {
        let format = w.format();
        if format == WeightFormat::Tq1_0 {
            return Err(GpuError::UnsupportedFormat(format));
        }
        let row_bytes = w.row_bytes();
        let limit = gpu.info.weight_chunk_bytes;
        // Spare word plus rounding up to a word.
        let room = limit.saturating_sub(8);
        let rows_per_chunk = (room / row_bytes.max(1) as u64).min(w.rows() as u64) as usize;
        if rows_per_chunk == 0 && w.rows() > 0 {
            return Err(GpuError::TooLarge {
                what: format!("one {format} row of {} columns", w.cols()),
                bytes: row_bytes as u64,
                limit,
            });
        }
        let cols = to_u32(w.cols(), "columns")?;
        let row_bytes_u32 = to_u32(row_bytes, "bytes per row")?;
        let y_stride = to_u32(w.rows(), "rows")?;
        let scale = w.tensor_scale().unwrap_or(1.0);
        let mut chunks = Vec::new();
        let mut row0 = 0;
        while row0 < w.rows() {
            let rows = rows_per_chunk.min(w.rows() - row0);
            let bytes = &w.data()[row0 * row_bytes..(row0 + rows) * row_bytes];
            let size = (bytes.len() as u64).div_ceil(4) * 4 + 4;
            let weights = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("weights"),
                size,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: true,
            });
            weights
                .slice(..)
                .get_mapped_range_mut()
                .slice(..bytes.len())
                .copy_from_slice(bytes);
            weights.unmap();
            let params = Params {
                rows: to_u32(rows, "rows")?,
                cols,
                row_bytes: row_bytes_u32,
                out_row0: to_u32(row0, "rows")?,
                y_stride,
                scale,
                _pad: [0; 2],
            };
            let params = wgpu::util::DeviceExt::create_buffer_init(
                &gpu.device,
                &wgpu::util::BufferInitDescriptor {
                    label: Some("matmul params"),
                    contents: bytemuck::bytes_of(&params),
                    usage: wgpu::BufferUsages::UNIFORM,
                },
            );
            chunks.push(Chunk {
                weights,
                params,
                rows,
            });
            row0 += rows;
        }
        Ok(Self {
            format,
            rows: w.rows(),
            cols: w.cols(),
            chunks,
        })
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Storage format.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// How many bindings (row chunks) the matrix takes.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
}
