// Rotary position embedding of the first 2·pairs dimensions of every head, in place,
// with a (cos, sin) table per row computed on the host (as the CPU engine computes it,
// so both rotate by the same f32 values). Pair i of a head is (x[2i], x[2i + 1]) for
// llama.cpp's NORM style and (x[i], x[i + pairs]) for NEOX.
//
// Defines: WG (invocations per workgroup), NEOX (0 or 1).

struct Params {
    rows: u32,
    heads: u32,
    head_dim: u32,
    pairs: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
// table[(row · pairs + i) · 2] = cos, [.. + 1] = sin.
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let n = gid.x + gid.y * groups.x * WG;
    let per_row = params.heads * params.pairs;
    if n >= params.rows * per_row {
        return;
    }
    let row = n / per_row;
    let head = (n % per_row) / params.pairs;
    let i = n % params.pairs;
    let base = (row * params.heads + head) * params.head_dim;
    var j = base + 2u * i;
    var k = j + 1u;
    if NEOX == 1u {
        j = base + i;
        k = j + params.pairs;
    }
    let t = (row * params.pairs + i) * 2u;
    let c = table[t];
    let s = table[t + 1u];
    let a = x[j];
    let b = x[k];
    x[j] = a * c - b * s;
    x[k] = a * s + b * c;
}
