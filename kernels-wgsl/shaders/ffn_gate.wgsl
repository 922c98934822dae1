// gate[i] = act(gate[i]) · up[i]: SwiGLU (ACT 0, silu(g) = g / (1 + e^−g)) or BitNet's
// squared ReLU (ACT 1, relu(g)²).
//
// Defines: WG (invocations per workgroup), ACT (0 or 1).

struct Params {
    len: u32,
}

@group(0) @binding(0) var<storage, read_write> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WG;
    if i >= params.len {
        return;
    }
    let g = gate[i];
    if ACT == 0u {
        gate[i] = g / (1.0 + exp(-g)) * up[i];
    } else {
        let r = max(g, 0.0);
        gate[i] = r * r * up[i];
    }
}
