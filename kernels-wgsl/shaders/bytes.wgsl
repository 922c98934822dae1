// Reading GGUF block bytes from a tensor uploaded as little-endian u32 words.
//
// Blocks of Q8_0 (34 bytes), Q4_0 (18), Q4_1 (20) and TQ2_0 (66) do not start on a word
// boundary, so every field is read through `load_u32`, which joins two words. The upload
// pads each tensor with one spare word, so `weights[w + 1]` is always in bounds.
//
// Expects `weights: array<u32>` to be declared by the kernel.

fn load_u32(byte_offset: u32) -> u32 {
    let w = byte_offset >> 2u;
    let shift = (byte_offset & 3u) * 8u;
    if shift == 0u {
        return weights[w];
    }
    return (weights[w] >> shift) | (weights[w + 1u] << (32u - shift));
}

fn load_u16(byte_offset: u32) -> u32 {
    return load_u32(byte_offset) & 0xffffu;
}

// An IEEE binary16 field as f32.
fn load_f16(byte_offset: u32) -> f32 {
    return unpack2x16float(load_u16(byte_offset)).x;
}

// The four bytes of `w` as signed int8 values, lowest byte first.
fn i8x4(w: u32) -> vec4<f32> {
    let v = vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u), bitcast<i32>(w));
    return vec4<f32>(v >> vec4<u32>(24u));
}

// The four bytes of `w` shifted right by `shift` and masked to `mask`, lowest byte first.
fn u8x4_bits(w: u32, shift: u32, mask: u32) -> vec4<f32> {
    let v = w >> shift;
    return vec4<f32>(vec4<u32>(v, v >> 8u, v >> 16u, v >> 24u) & vec4<u32>(mask));
}
