"""Reference SentencePiece tokenization: trains a tiny SentencePiece BPE model
(byte fallback, identity normalization, dummy prefix: the settings of Llama 2's
tokenizer) on generated text, writes its vocabulary as a GGUF file the way
llama.cpp's converter does (tokenizer.ggml.model = "llama"), and encodes texts
with the `sentencepiece` package itself.

Usage: spm_tokenize.py OUT.gguf < texts.json
stdin: a JSON list of strings.
stdout: JSON {"ids": [[ids]], "decoded": [str]}.
"""

import io
import json
import random
import sys

import gguf
import sentencepiece as spm

# llama.cpp's token types.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

WORDS = (
    "the a of and to in is was he for it with as his on be at by had are but from or have an they "
    "which one you were her all she there would their we him been has when who will more no if out "
    "so said what up its about into than them can only other new some could time these two may then "
    "do first any my now such like our over man me even most made after also did many before must "
    "token model merge score byte piece sentence tokenizer hello world quick brown fox jumps lazy dog "
    "café naïve résumé über straße"
).split()


def training_lines(n=4000, seed=1234):
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 16))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        line = " ".join(words)
        if rng.random() < 0.5:
            line = line[0].upper() + line[1:]
        line += rng.choice([".", "!", "?", ",", ";", ":"])
        if rng.random() < 0.2:
            line = '"' + line + '" (' + rng.choice(WORDS) + ")"
        lines.append(line)
    return lines


def main():
    out_path = sys.argv[1]
    texts = json.load(sys.stdin)

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_lines()),
        model_writer=model,
        model_type="bpe",
        vocab_size=500,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())

    pieces, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        pieces.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(UNKNOWN)
        elif sp.is_control(i):
            types.append(CONTROL)
        elif sp.is_unused(i):
            types.append(UNUSED)
        elif sp.is_byte(i):
            types.append(BYTE)
        else:
            types.append(NORMAL)

    w = gguf.GGUFWriter(out_path, arch="llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    ids = [sp.encode(t) for t in texts]
    decoded = [sp.decode(i) for i in ids]
    json.dump({"ids": ids, "decoded": decoded}, sys.stdout)


if __name__ == "__main__":
    main()
