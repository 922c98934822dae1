// Q8_0 (ggml `block_q8_0`, 34 bytes): f16 scale `d`, then 32 int8 values `qs`;
// value i = d · qs[i].
const BLOCK_LEN: u32 = 32u;
const BLOCK_BYTES: u32 = 34u;

fn accumulate_block(offset: u32, col: u32, acc: ptr<function, array<f32, BATCH>>) {
    let d = load_f16(offset);
    var q: array<vec4<f32>, 8>;
    for (var k = 0u; k < 8u; k++) {
        q[k] = i8x4(load_u32(offset + 2u + 4u * k));
    }
    for (var b = 0u; b < BATCH; b++) {
        var s = 0.0;
        for (var k = 0u; k < 8u; k++) {
            s += dot(q[k], x4(b, col + 4u * k));
        }
        (*acc)[b] += d * s;
    }
}
