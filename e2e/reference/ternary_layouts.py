"""numpy versions of the ternary layouts (TQ1_0, TQ2_0 from llama.cpp; I2_S from bitnet.cpp)
and of bitnet.cpp's and llama.cpp's ternary dot products, written from the upstream sources
(see docs/bitnet.md). kernels-cpu/tests/gguf_parity.rs checks the Rust layouts and
quantizers against these.
"""

import numpy as np

QK_K = 256

def dequant_tq2_0(raw: bytes, n: int) -> np.ndarray:
    """TQ2_0 (ggml type 35): blocks of 256 elems, 66 bytes: qs[64] then fp16 d."""
    assert n % QK_K == 0
    b = np.frombuffer(raw, dtype=np.uint8)[: (n // QK_K) * 66].reshape(-1, 66)
    qs, d = b[:, :64], b[:, 64:66].copy().view('<f2').astype(np.float32)   # d: (nb,1)
    # qs[32*j + m] bits (2l, 2l+1) hold element 128*j + 32*l + m  (j in 0..1, l in 0..3, m in 0..31)
    q = qs.reshape(-1, 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)
    q = (q & 3).astype(np.int8).reshape(-1, QK_K) - 1          # code 3 would give +2 (never written)
    return (d * q.astype(np.float32)).reshape(-1)

def dequant_tq1_0(raw: bytes, n: int) -> np.ndarray:
    """TQ1_0 (ggml type 34): blocks of 256 elems, 54 bytes: qs[48], qh[4], fp16 d."""
    assert n % QK_K == 0
    b = np.frombuffer(raw, dtype=np.uint8)[: (n // QK_K) * 54].reshape(-1, 54)
    qs, qh, d = b[:, :48], b[:, 48:52], b[:, 52:54].copy().view('<f2').astype(np.float32)
    pow3 = np.array([1, 3, 9, 27, 81], np.uint8)
    def trits(bytes_, k):             # bytes_: (nb, w) -> (nb, k, w) trit n of every byte
        q = (bytes_[:, None, :] * pow3[:k, None]).astype(np.uint8)   # wraps mod 256 on purpose
        return ((q.astype(np.uint16) * 3) >> 8).astype(np.int8)
    t0 = trits(qs[:, :32], 5).reshape(-1, 160)   # elem 32*n + m  <- trit n of qs[m]
    t1 = trits(qs[:, 32:], 5).reshape(-1, 80)    # elem 160 + 16*n + m <- trit n of qs[32+m]
    t2 = trits(qh, 4).reshape(-1, 16)            # elem 240 + 4*n + j <- trit n of qh[j]
    q = np.concatenate([t0, t1, t2], axis=1) - 1
    return (d * q.astype(np.float32)).reshape(-1)

def dequant_i2_s(raw: bytes, shape) -> np.ndarray:
    """bitnet.cpp I2_S (type 36 in its fork), canonical x86 layout.
    shape = GGUF ne order (ne0 = row length, ne1 = rows). Data = numel/4 packed bytes + 32-byte tail
    whose first 4 bytes are the per-tensor f32 scale."""
    n = int(np.prod(shape))
    assert n % 128 == 0
    b = np.frombuffer(raw, dtype=np.uint8)
    packed = b[: n // 4].reshape(-1, 32)                       # one 32-byte group per 128 elements
    scale = np.frombuffer(b[n // 4: n // 4 + 4].tobytes(), '<f4')[0]
    # byte g of a group: bits 7:6 -> elem g, 5:4 -> elem 32+g, 3:2 -> elem 64+g, 1:0 -> elem 96+g
    codes = packed[:, None, :] >> np.array([6, 4, 2, 0], np.uint8).reshape(1, 4, 1)
    codes = (codes & 3).reshape(-1)
    lut = np.array([-1.0, 0.0, 1.0, 0.0], np.float32)         # bitnet.cpp's map: code 3 -> 0
    return scale * lut[codes]

def quant_i2_s(w_ternary_times_scale: np.ndarray) -> bytes:
    """Mirror of quantize_i2_s (ACT_PARALLEL / x86 path): input must already be {-s,0,+s}."""
    x = w_ternary_times_scale.astype(np.float32).reshape(-1)
    n = x.size; assert n % 128 == 0
    scale = np.float32(np.abs(x.astype(np.float64)).max())
    q = np.where(np.abs(x) < 1e-6, 1, np.where(x > 0, 2, 0)).astype(np.uint8)
    q = q.reshape(-1, 4, 32)
    packed = (q[:, 0] << 6) | (q[:, 1] << 4) | (q[:, 2] << 2) | q[:, 3]
    tail = np.zeros(32, np.uint8); tail[:4] = np.frombuffer(scale.tobytes(), np.uint8)
    return packed.astype(np.uint8).tobytes() + tail.tobytes()

# ---- matvec semantics -------------------------------------------------------------------
def act_quant_i8_per_token(x: np.ndarray):
    """bitnet.cpp quantize_row_i8_s: one scale per row (token) of x (shape (T, K))."""
    absmax = np.maximum(np.abs(x.astype(np.float64)).max(axis=-1, keepdims=True), 1e-5)
    s = (127.0 / absmax).astype(np.float32)                        # act_scales
    q = np.clip(np.rint((x.astype(np.float32) * s).astype(np.float32)), -128, 127).astype(np.int32)
    return q, s, q.sum(axis=-1, keepdims=True)                     # act_sums

def i2_s_matmul_bitnetcpp(raw: bytes, shape, x: np.ndarray) -> np.ndarray:
    """y[t, r] as computed by bitnet.cpp for an I2_S weight (ne0=K, ne1=rows) and f32 x (T, K)."""
    K, R = shape
    n = K * R
    b = np.frombuffer(raw, dtype=np.uint8)
    codes = (b[: n // 4].reshape(-1, 1, 32) >> np.array([6, 4, 2, 0], np.uint8).reshape(1, 4, 1)) & 3
    codes = codes.reshape(R, K).astype(np.int32)                    # raw codes 0/1/2
    wscale = np.frombuffer(b[n // 4: n // 4 + 4].tobytes(), '<f4')[0]
    q, s, qsum = act_quant_i8_per_token(x)
    acc = (q @ codes.T).astype(np.float32)                          # sum code*q (exact int)
    return ((acc - qsum.astype(np.float32)) / s) * wscale

def q8_K(x: np.ndarray):
    """llama.cpp quantize_row_q8_K_ref on a 1-D f32 row (len % 256 == 0) -> (q int8 (nb,256), d f32 (nb,))."""
    xb = x.astype(np.float32).reshape(-1, 256)
    idx = np.abs(xb).argmax(axis=1)                                 # first index of max |x|
    mx = xb[np.arange(len(xb)), idx]
    with np.errstate(divide='ignore'):
        iscale = np.where(mx != 0, np.float32(-127.0) / mx, 0).astype(np.float32)
    q = np.minimum(np.rint((iscale[:, None] * xb).astype(np.float32)), 127).astype(np.int8)
    d = np.where(mx != 0, np.float32(1.0) / np.where(iscale == 0, 1, iscale), 0).astype(np.float32)
    return q, d

def tq2_0_vec_dot(raw: bytes, x: np.ndarray) -> float:
    """ggml_vec_dot_tq2_0_q8_K_generic for one weight row (raw = that row's blocks) and f32 x."""
    K = x.size
    b = np.frombuffer(raw, dtype=np.uint8)[: (K // 256) * 66].reshape(-1, 66)
    dw = b[:, 64:66].copy().view('<f2').astype(np.float32).reshape(-1)
    codes = ((b[:, :64].reshape(-1, 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & 3)
    t = codes.reshape(-1, 256).astype(np.int32) - 1
    q, dy = q8_K(x)
    sumi = (t * q.astype(np.int32)).sum(axis=1)
    sumf = np.float32(0)
    for i in range(len(sumi)):                                      # generic order; AVX2 order differs
        sumf = np.float32(sumf + np.float32(sumi[i]) * np.float32(dy[i] * dw[i]))
    return float(sumf)
