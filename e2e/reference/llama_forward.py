"""Independent reference forward pass for llama-family GGUF models.

Reads the file with llama.cpp's own `gguf` package, dequantizes every tensor
with `gguf.quants.dequantize`, and runs the transformer in float64 numpy:
- `llama` as llama.cpp's llama graph does (RMSNorm, NORM-style RoPE on
  adjacent pairs, GQA causal attention, SwiGLU, tied or separate output head);
- `bitnet`, `bitnet-b1.58`, `bitnet-25` as described in
  docs/bitnet.md §2: NEOX RoPE, RMSNorm of the attention output
  (`attn_sub_norm`) before `attn_output`, relu² gate for bitnet-b1.58/25
  (SiLU for `bitnet` unless `bitnet.hidden_activation` says relu2), RMSNorm
  of the gated product (`ffn_sub_norm`) before `ffn_down`, and optional
  `blk.N.*.scale` scalars multiplied into the matmul outputs.

Usage: llama_forward.py MODEL [--q8-activations | --per-token-activations] < sequences.json

--q8-activations rounds the input of every matmul with a quantized weight
(Q4_0, Q4_1, Q8_0, TQ1_0, TQ2_0) to int8 blocks of 32 with scale max|x|/127, as llama.cpp's
CPU backend (and ours) does, to separate that rounding from other differences.
--per-token-activations rounds them to int8 with one scale per row (per token),
as BitNet b1.58 was trained and bitnet.cpp computes.
stdin: a JSON list of sequences, each a list of token ids.
stdout: float32 little-endian logits of every position of every sequence, in
order, each row n_vocab wide.
"""

import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def main():
    path = sys.argv[1]
    q8_acts = "--q8-activations" in sys.argv[2:]
    per_token = "--per-token-activations" in sys.argv[2:]
    sequences = json.load(sys.stdin)
    r = GGUFReader(path)
    arch = field(r, "general.architecture")
    assert arch in ("llama", "bitnet", "bitnet-b1.58", "bitnet-25"), f"unsupported architecture {arch}"
    bitnet = arch != "llama"
    act = field(r, f"{arch}.hidden_activation")
    relu2 = act in ("relu2", "relu_sqr") or (act is None and arch in ("bitnet-b1.58", "bitnet-25"))
    n_layer = field(r, f"{arch}.block_count")
    n_embd = field(r, f"{arch}.embedding_length")
    n_head = field(r, f"{arch}.attention.head_count")
    n_head_kv = field(r, f"{arch}.attention.head_count_kv", n_head)
    eps = field(r, f"{arch}.attention.layer_norm_rms_epsilon")
    base = field(r, f"{arch}.rope.freq_base", 10000.0)
    head_dim = n_embd // n_head
    n_rot = field(r, f"{arch}.rope.dimension_count", head_dim)

    tensors = {t.name: t for t in r.tensors}
    assert "rope_freqs.weight" not in tensors, "RoPE frequency factors are not modelled here"
    assert field(r, f"{arch}.rope.scale_linear") is None, "RoPE scaling is not modelled here"
    cache = {}

    def w(name):
        if name not in cache:
            t = tensors[name]
            cache[name] = dequantize(t.data, t.tensor_type).astype(np.float64)
        return cache[name]

    quantized = {"Q4_0", "Q4_1", "Q8_0", "TQ1_0", "TQ2_0"}

    def q8(x):
        rows = x.reshape(-1, 32)
        d = np.abs(rows).max(axis=1, keepdims=True) / 127.0
        safe = np.where(d == 0, 1.0, d)
        q = np.trunc(rows / safe + np.copysign(0.5, rows))  # roundf: half away from zero
        return (q * d).reshape(x.shape)

    def q8_per_token(x):
        """int8 with one scale per row (token), as bitnet.cpp's quantize_row_i8_s."""
        d = np.abs(x).max(axis=-1, keepdims=True) / 127.0
        safe = np.where(d == 0, 1.0, d)
        q = np.trunc(x / safe + np.copysign(0.5, x))
        return q * d

    def mm(x, name):
        """x @ W.T for weight `name`, with the activation rounding if asked."""
        if q8_acts and tensors[name].tensor_type.name in quantized:
            x = q8(x)
        if per_token and tensors[name].tensor_type.name in quantized:
            x = q8_per_token(x)
        y = x @ w(name).T
        scale = name.replace(".weight", ".scale")
        if bitnet and scale in tensors:
            y = y * w(scale).reshape(-1)[0]
        return y

    def rms_norm(x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight

    def rope(x, positions):
        # x: (T, heads, head_dim); rotate pairs (2i, 2i+1) of the first n_rot dims.
        out = x.copy()
        inv = base ** (-np.arange(0, n_rot, 2, dtype=np.float64) / n_rot)
        ang = positions[:, None] * inv[None, :]  # (T, n_rot/2)
        cos = np.cos(ang)[:, None, :]
        sin = np.sin(ang)[:, None, :]
        if bitnet:  # NEOX: pairs (i, i + n_rot/2)
            lo, hi = slice(0, n_rot // 2), slice(n_rot // 2, n_rot)
        else:  # NORM: pairs (2i, 2i + 1)
            lo, hi = slice(0, n_rot, 2), slice(1, n_rot, 2)
        x0 = x[..., lo]
        x1 = x[..., hi]
        out[..., lo] = x0 * cos - x1 * sin
        out[..., hi] = x0 * sin + x1 * cos
        return out

    def forward(tokens):
        T = len(tokens)
        pos = np.arange(T, dtype=np.float64)
        emb = w("token_embd.weight")  # (n_vocab, n_embd)
        x = emb[np.array(tokens, dtype=np.int64)]
        mask = np.triu(np.full((T, T), -np.inf), k=1)
        group = n_head // n_head_kv

        for i in range(n_layer):
            p = f"blk.{i}."
            h = rms_norm(x, w(p + "attn_norm.weight"))
            q = mm(h, p + "attn_q.weight").reshape(T, n_head, head_dim)
            k = mm(h, p + "attn_k.weight").reshape(T, n_head_kv, head_dim)
            v = mm(h, p + "attn_v.weight").reshape(T, n_head_kv, head_dim)
            q = rope(q, pos)
            k = rope(k, pos)
            att = np.empty((T, n_head, head_dim))
            for hd in range(n_head):
                kv = hd // group
                s = (q[:, hd, :] @ k[:, kv, :].T) / np.sqrt(head_dim) + mask
                s = np.exp(s - s.max(axis=-1, keepdims=True))
                s /= s.sum(axis=-1, keepdims=True)
                att[:, hd, :] = s @ v[:, kv, :]
            att = att.reshape(T, n_embd)
            if bitnet:
                att = rms_norm(att, w(p + "attn_sub_norm.weight"))
            x = x + mm(att, p + "attn_output.weight")
            h = rms_norm(x, w(p + "ffn_norm.weight"))
            g = mm(h, p + "ffn_gate.weight")
            u = mm(h, p + "ffn_up.weight")
            f = (np.maximum(g, 0.0) ** 2 if relu2 else g / (1.0 + np.exp(-g))) * u
            if bitnet:
                f = rms_norm(f, w(p + "ffn_sub_norm.weight"))
            x = x + mm(f, p + "ffn_down.weight")

        x = rms_norm(x, w("output_norm.weight"))
        return mm(x, "output.weight" if "output.weight" in tensors else "token_embd.weight")

    for tokens in sequences:
        sys.stdout.buffer.write(forward(tokens).astype("<f4").tobytes())


if __name__ == "__main__":
    main()
