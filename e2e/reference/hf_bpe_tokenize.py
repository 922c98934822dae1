"""Reference byte-level BPE tokenization with HF `tokenizers`, built from a
GGUF file's own vocabulary and merges (read with llama.cpp's `gguf` package).

Usage: hf_bpe_tokenize.py MODEL.gguf MODE < texts.json
MODE: "smollm" -- Sequence[Digits(individual_digits), ByteLevel(use_regex)]
                  (llama.cpp's smollm/starcoder pre-tokenizer)
      "llama3" -- Sequence[Split(Llama 3 regex, isolated), ByteLevel(no regex)],
                  BPE with ignore_merges (llama.cpp's llama-bpe)
stdin: a JSON list of strings.
stdout: JSON {"special": [[ids]], "plain": [[ids]], "words": [[str]]}: each
text encoded with control tokens parsed ("special") and with them treated as
text ("plain"), and the words the pre-tokenizer alone cuts it into (byte-level
mapped, as BPE sees them).
"""

import json
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CONTROL = 3
USER_DEFINED = 4


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def split_merge(m):
    # Split at the first space after the first byte, as llama.cpp does.
    i = m.index(" ", 1)
    return (m[:i], m[i + 1 :])


def main():
    path, mode = sys.argv[1], sys.argv[2]
    texts = json.load(sys.stdin)
    r = GGUFReader(path)
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = [split_merge(m) for m in field(r, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}

    if mode == "smollm":
        bpe = models.BPE(vocab=vocab, merges=merges)
        pre = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    elif mode == "llama3":
        bpe = models.BPE(vocab=vocab, merges=merges, ignore_merges=True)
        pre = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        raise SystemExit(f"unknown mode {mode!r}")

    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == CONTROL]
    )
    tok.add_tokens(
        [AddedToken(t, special=False, normalized=False) for t, ty in zip(tokens, types) if ty == USER_DEFINED]
    )

    special = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    tok.encode_special_tokens = True
    plain = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    words = [[w for w, _ in pre.pre_tokenize_str(t)] for t in texts]
    json.dump({"special": special, "plain": plain, "words": words}, sys.stdout)


if __name__ == "__main__":
    main()
