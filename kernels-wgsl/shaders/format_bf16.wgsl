// BF16 weights: the top 16 bits of a binary32, little-endian.
const BLOCK_LEN: u32 = 1u;
const BLOCK_BYTES: u32 = 2u;

fn accumulate_block(offset: u32, col: u32, acc: ptr<function, array<f32, BATCH>>) {
    let w = bitcast<f32>(load_u16(offset) << 16u);
    for (var b = 0u; b < BATCH; b++) {
        (*acc)[b] += w * x[b * params.cols + col];
    }
}
