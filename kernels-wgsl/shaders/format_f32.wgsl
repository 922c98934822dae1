// F32 weights: one little-endian binary32 per value.
const BLOCK_LEN: u32 = 1u;
const BLOCK_BYTES: u32 = 4u;

fn accumulate_block(offset: u32, col: u32, acc: ptr<function, array<f32, BATCH>>) {
    let w = bitcast<f32>(load_u32(offset));
    for (var b = 0u; b < BATCH; b++) {
        (*acc)[b] += w * x[b * params.cols + col];
    }
}
