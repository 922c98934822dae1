// y[b · y_stride + out_row0 + r] = scale · Σ_c W[r, c] · x[b · cols + c], for the
// BATCH activation rows b and every row r of one chunk of a weight matrix.
//
// A workgroup computes ROWS weight rows with TPR invocations each: the TPR invocations
// of a row stride over its blocks, each keeping BATCH partial sums, which are then
// reduced through workgroup memory (no subgroup operations: the web has none).
// Workgroups are laid out in two dimensions so that matrices with more rows than
// `maxComputeWorkgroupsPerDimension · ROWS` still fit.
//
// Defines (prepended as `const`): ROWS and TPR (powers of two, WG = ROWS · TPR
// invocations) and BATCH (activation rows, 1..=16). The format file before this one
// defines BLOCK_LEN, BLOCK_BYTES and `accumulate_block`.

struct Params {
    // Rows of this chunk.
    rows: u32,
    // Input features (a multiple of BLOCK_LEN).
    cols: u32,
    // Bytes of one weight row.
    row_bytes: u32,
    // First output row of this chunk.
    out_row0: u32,
    // Distance between output rows of consecutive batch rows (the matrix's rows).
    y_stride: u32,
    // Per-tensor scale (I2_S); 1 for the other formats.
    scale: f32,
}

@group(0) @binding(0) var<storage, read> weights: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const WG: u32 = ROWS * TPR;

var<workgroup> partial: array<f32, WG * BATCH>;

// Four consecutive activations of batch row `b` from column `c`.
fn x4(b: u32, c: u32) -> vec4<f32> {
    let i = b * params.cols + c;
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let local_row = lid / TPR;
    let t = lid % TPR;
    let row = (wid.x + wid.y * groups.x) * ROWS + local_row;
    // Rows past the end still take part in the barriers below.
    let in_range = row < params.rows;
    var acc: array<f32, BATCH>;
    if in_range {
        let blocks = params.cols / BLOCK_LEN;
        let row_start = row * params.row_bytes;
        for (var blk = t; blk < blocks; blk += TPR) {
            accumulate_block(row_start + blk * BLOCK_BYTES, blk * BLOCK_LEN, &acc);
        }
    }
    if TPR == 1u {
        if in_range {
            for (var b = 0u; b < BATCH; b++) {
                y[b * params.y_stride + params.out_row0 + row] = params.scale * acc[b];
            }
        }
        return;
    }
    for (var b = 0u; b < BATCH; b++) {
        partial[b * WG + lid] = acc[b];
    }
    workgroupBarrier();
    for (var stride = TPR / 2u; stride > 0u; stride >>= 1u) {
        if t < stride {
            for (var b = 0u; b < BATCH; b++) {
                partial[b * WG + lid] += partial[b * WG + lid + stride];
            }
        }
        workgroupBarrier();
    }
    if in_range && t == 0u {
        for (var b = 0u; b < BATCH; b++) {
            y[b * params.y_stride + params.out_row0 + row] = params.scale * partial[b * WG + lid];
        }
    }
}
