// TQ2_0 (ggml `block_tq2_0`, 66 bytes): 64 bytes `qs` of 2-bit codes, then an f16 scale
// `d`; value 128·j + 32·l + m is d · (c − 1) for the code c in bits 2l..2l + 2 of
// qs[32·j + m].
const BLOCK_LEN: u32 = 256u;
const BLOCK_BYTES: u32 = 66u;

fn accumulate_block(offset: u32, col: u32, acc: ptr<function, array<f32, BATCH>>) {
    let d = load_f16(offset + 64u);
    var s: array<f32, BATCH>;
    for (var k = 0u; k < 16u; k++) {
        let w = load_u32(offset + 4u * k);
        // Bytes 4k..4k + 4 are m = 4·(k mod 8) .. + 4 of half j = k / 8.
        let base = col + 128u * (k / 8u) + 4u * (k % 8u);
        for (var l = 0u; l < 4u; l++) {
            let c = u8x4_bits(w, 2u * l, 3u) - vec4<f32>(1.0);
            for (var b = 0u; b < BATCH; b++) {
                s[b] += dot(c, x4(b, base + 32u * l));
            }
        }
    }
    for (var b = 0u; b < BATCH; b++) {
        (*acc)[b] += d * s[b];
    }
}
