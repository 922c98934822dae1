// Q4_0 (ggml `block_q4_0`, 18 bytes): f16 scale `d`, then 16 bytes `qs`; value j is
// the low nibble of qs[j] and value j + 16 its high nibble, each minus 8, times d.
const BLOCK_LEN: u32 = 32u;
const BLOCK_BYTES: u32 = 18u;

fn accumulate_block(offset: u32, col: u32, acc: ptr<function, array<f32, BATCH>>) {
    let d = load_f16(offset);
    var lo: array<vec4<f32>, 4>;
    var hi: array<vec4<f32>, 4>;
    for (var k = 0u; k < 4u; k++) {
        let w = load_u32(offset + 2u + 4u * k);
        lo[k] = u8x4_bits(w, 0u, 0xfu) - vec4<f32>(8.0);
        hi[k] = u8x4_bits(w, 4u, 0xfu) - vec4<f32>(8.0);
    }
    for (var b = 0u; b < BATCH; b++) {
        var s = 0.0;
        for (var k = 0u; k < 4u; k++) {
            s += dot(lo[k], x4(b, col + 4u * k)) + dot(hi[k], x4(b, col + 16u + 4u * k));
        }
        (*acc)[b] += d * s;
    }
}
