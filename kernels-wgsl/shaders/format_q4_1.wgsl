// Q4_1 (ggml `block_q4_1`, 20 bytes): f16 scale `d`, f16 minimum `m`, then 16 bytes
// `qs`; value j is d · (low nibble of qs[j]) + m and value j + 16 uses the high nibble.
const BLOCK_LEN: u32 = 32u;
const BLOCK_BYTES: u32 = 20u;

fn accumulate_block(offset: u32, col: u32, acc: ptr<function, array<f32, BATCH>>) {
    let d = load_f16(offset);
    let m = load_f16(offset + 2u);
    var lo: array<vec4<f32>, 4>;
    var hi: array<vec4<f32>, 4>;
    for (var k = 0u; k < 4u; k++) {
        let w = load_u32(offset + 4u + 4u * k);
        lo[k] = u8x4_bits(w, 0u, 0xfu);
        hi[k] = u8x4_bits(w, 4u, 0xfu);
    }
    let ones = vec4<f32>(1.0);
    for (var b = 0u; b < BATCH; b++) {
        var s = 0.0;
        var sx = 0.0;
        for (var k = 0u; k < 4u; k++) {
            let xl = x4(b, col + 4u * k);
            let xh = x4(b, col + 16u + 4u * k);
            s += dot(lo[k], xl) + dot(hi[k], xh);
            sx += dot(xl + xh, ones);
        }
        (*acc)[b] += d * s + m * sx;
    }
}
