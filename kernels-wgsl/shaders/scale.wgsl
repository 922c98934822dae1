// x[i] *= factor (BitNet's per-tensor scales of a matmul's product).
//
// Defines: WG (invocations per workgroup).

struct Params {
    len: u32,
    factor: f32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WG;
    if i >= params.len {
        return;
    }
    x[i] = x[i] * params.factor;
}
