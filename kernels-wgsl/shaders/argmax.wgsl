// out[r] = the index of the largest of x[r, ..], one workgroup per row: the lowest
// index wins ties and NaN never wins (index 0 if every value is NaN or −∞), as
// `shared_protocol::sampling::argmax`. So a greedy step reads back one u32, not a row
// of logits.
//
// Defines: WG (invocations per workgroup, a power of two).

struct Params {
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> best_value: array<f32, WG>;
var<workgroup> best_index: array<u32, WG>;

// Whether (v, i) beats (bv, bi): larger, or as large with a lower index. A NaN `v`
// compares false and so never beats anything.
fn beats(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return v > bv || (v == bv && i < bi);
}

const NONE: u32 = 0xffffffffu;
// -f32::MAX: the literal rounds to it, and Tint (Chrome) refuses literals past it.
const LOWEST: f32 = -3.4028234e38;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x;
    if row >= params.rows {
        return;
    }
    let start = row * params.cols;
    // −∞ never wins either (the CPU starts from −∞ and compares with `>`): the first
    // candidate must be at least the lowest finite value.
    var bv = 0.0;
    var bi = NONE;
    for (var i = lid; i < params.cols; i += WG) {
        let v = x[start + i];
        if (bi == NONE && v >= LOWEST) || (bi != NONE && v > bv) {
            bv = v;
            bi = i;
        }
    }
    best_value[lid] = bv;
    best_index[lid] = bi;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            let v = best_value[lid + stride];
            let i = best_index[lid + stride];
            if i != NONE && (best_index[lid] == NONE || beats(v, i, best_value[lid], best_index[lid])) {
                best_value[lid] = v;
                best_index[lid] = i;
            }
        }
        workgroupBarrier();
    }
    if lid == 0u {
        out[row] = select(best_index[0], 0u, best_index[0] == NONE);
    }
}
