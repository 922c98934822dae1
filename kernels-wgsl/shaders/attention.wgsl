// Causal grouped-query attention of `rows` new query rows over a token-major KV cache:
// out[t, h] = Σ_j softmax_j(scale · q[t, h]·k[j, g]) · v[j, g] over the positions
// j ≤ start + t, where g = h / (n_head / n_head_kv) is the query head's KV group.
// One workgroup per (row, head):
// 1. the query head goes to workgroup memory; invocations stride over positions and
//    write each score to `scores` (global scratch, `rows × n_head × ctx`);
// 2. the maximum and the sum of exp(score − max) are reduced through workgroup memory;
// 3. invocation d sums p_j · v[j, g][d] over every position, one output dimension each
//    (strided when head_dim > WG), reading the value rows coalesced.
//
// Defines: WG (invocations per workgroup, a power of two), HEAD_DIM (≤ 256).

struct Params {
    rows: u32,
    n_head: u32,
    n_head_kv: u32,
    // Absolute position of query row 0 (so row t sees start + t + 1 positions).
    start: u32,
    // Width of a cache row (n_head_kv · HEAD_DIM).
    kv_width: u32,
    // Scores per (row, head) in the scratch buffer (at least start + rows).
    ctx: u32,
    scale: f32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<f32>;
@group(0) @binding(2) var<storage, read> v_cache: array<f32>;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> q_head: array<f32, HEAD_DIM>;
var<workgroup> reduce: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let pair = wid.x;
    if pair >= params.rows * params.n_head {
        return;
    }
    let row = pair / params.n_head;
    let h = pair % params.n_head;
    let g = h / (params.n_head / params.n_head_kv);
    let n_ctx = params.start + row + 1u;
    let q_off = pair * HEAD_DIM;
    let kv_off = g * HEAD_DIM;
    let s_off = pair * params.ctx;

    for (var d = lid; d < HEAD_DIM; d += WG) {
        q_head[d] = q[q_off + d];
    }
    workgroupBarrier();

    // -f32::MAX (Tint refuses a literal past it; this one rounds to it).
    var local_max = -3.4028234e38;
    for (var j = lid; j < n_ctx; j += WG) {
        let k_row = j * params.kv_width + kv_off;
        var s = 0.0;
        for (var d = 0u; d < HEAD_DIM; d++) {
            s += q_head[d] * k_cache[k_row + d];
        }
        s *= params.scale;
        scores[s_off + j] = s;
        local_max = max(local_max, s);
    }
    reduce[lid] = local_max;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            reduce[lid] = max(reduce[lid], reduce[lid + stride]);
        }
        workgroupBarrier();
    }
    let m = reduce[0];
    workgroupBarrier();

    var local_sum = 0.0;
    for (var j = lid; j < n_ctx; j += WG) {
        let p = exp(scores[s_off + j] - m);
        scores[s_off + j] = p;
        local_sum += p;
    }
    reduce[lid] = local_sum;
    // Also orders the writes of `scores` above before the reads below.
    storageBarrier();
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            reduce[lid] += reduce[lid + stride];
        }
        workgroupBarrier();
    }
    let inv_sum = 1.0 / reduce[0];

    for (var d = lid; d < HEAD_DIM; d += WG) {
        var acc = 0.0;
        for (var j = 0u; j < n_ctx; j++) {
            acc += scores[s_off + j] * v_cache[j * params.kv_width + kv_off + d];
        }
        out[q_off + d] = acc * inv_sum;
    }
}
