// out[r, i] = x[r, i] / sqrt(mean_i(x[r, i]²) + eps) · weight[i], one workgroup per row.
//
// Defines: WG (invocations per workgroup, a power of two).

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x;
    if row >= params.rows {
        return;
    }
    let start = row * params.cols;
    var ss = 0.0;
    for (var i = lid; i < params.cols; i += WG) {
        let v = x[start + i];
        ss += v * v;
    }
    partial[lid] = ss;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let scale = 1.0 / sqrt(partial[0] / f32(params.cols) + params.eps);
    for (var i = lid; i < params.cols; i += WG) {
        out[start + i] = x[start + i] * scale * weight[i];
    }
}
