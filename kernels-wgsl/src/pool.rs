//! [`BufferPool`]: reuse of transient buffers (staging, activations) by size class.

use std::collections::HashMap;
use std::sync::Mutex;

/// Free buffers by (size class, usage). A size class is a power of two of at least 256
/// bytes, so a pass that asks for similar sizes every step reuses the same buffers and
/// the driver allocates nothing in steady state.
#[derive(Default)]
pub(crate) struct BufferPool {
    free: Mutex<HashMap<(u64, u32), Vec<wgpu::Buffer>>>,
}

/// Most buffers of one class kept; more are dropped when returned.
const KEEP_PER_CLASS: usize = 8;

fn size_class(size: u64) -> u64 {
    size.max(256).next_power_of_two()
}

impl BufferPool {
    /// A buffer of at least `size` bytes with exactly `usage`.
    pub(crate) fn take(
        &self,
        device: &wgpu::Device,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let class = size_class(size);
        let reused = self
            .free
            .lock()
            .ok()
            .and_then(|mut free| free.get_mut(&(class, usage.bits())).and_then(Vec::pop));
        reused.unwrap_or_else(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pooled"),
                size: class,
                usage,
                mapped_at_creation: false,
            })
        })
    }

    /// Returns a buffer from [`Self::take`] for reuse.
    pub(crate) fn give(&self, buffer: wgpu::Buffer) {
        let key = (buffer.size(), buffer.usage().bits());
        if let Ok(mut free) = self.free.lock() {
            let list = free.entry(key).or_default();
            if list.len() < KEEP_PER_CLASS {
                list.push(buffer);
            }
        }
    }
}
