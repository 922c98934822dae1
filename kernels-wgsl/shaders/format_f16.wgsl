// F16 weights: one little-endian binary16 per value.
const BLOCK_LEN: u32 = 1u;
const BLOCK_BYTES: u32 = 2u;

fn accumulate_block(offset: u32, col: u32, acc: ptr<function, array<f32, BATCH>>) {
    let w = load_f16(offset);
    for (var b = 0u; b < BATCH; b++) {
        (*acc)[b] += w * x[b * params.cols + col];
    }
}
