// I2_S (bitnet.cpp, x86 layout): groups of 128 values in 32 bytes; value 32·l + m of a
// group is c − 1 for the code c in bits 6 − 2l..8 − 2l of byte m. The per-tensor scale
// is applied once per output (`params.scale`).
const BLOCK_LEN: u32 = 128u;
const BLOCK_BYTES: u32 = 32u;

fn accumulate_block(offset: u32, col: u32, acc: ptr<function, array<f32, BATCH>>) {
    for (var k = 0u; k < 8u; k++) {
        let w = load_u32(offset + 4u * k);
        for (var l = 0u; l < 4u; l++) {
            let c = u8x4_bits(w, 6u - 2u * l, 3u) - vec4<f32>(1.0);
            for (var b = 0u; b < BATCH; b++) {
                (*acc)[b] += dot(c, x4(b, col + 32u * l + 4u * k));
            }
        }
    }
}
