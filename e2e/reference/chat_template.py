"""Reference chat-template rendering: the GGUF's `tokenizer.chat_template`
rendered with jinja2 the way HF `transformers` does (sandboxed environment,
trim_blocks, lstrip_blocks).

Usage: chat_template.py MODEL.gguf < cases.json
stdin: a JSON list of {"messages": [{"role", "content"}], "add_generation_prompt": bool}.
stdout: a JSON list of the rendered strings.
"""

import json
import sys

from gguf import GGUFReader
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def raise_exception(message):
    raise RuntimeError(message)


def main():
    r = GGUFReader(sys.argv[1])
    source = field(r, "tokenizer.chat_template")
    tokens = field(r, "tokenizer.ggml.tokens")
    bos = field(r, "tokenizer.ggml.bos_token_id")
    eos = field(r, "tokenizer.ggml.eos_token_id")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    template = env.from_string(source)
    out = []
    for case in json.load(sys.stdin):
        out.append(
            template.render(
                messages=case["messages"],
                add_generation_prompt=case["add_generation_prompt"],
                bos_token=tokens[bos] if bos is not None else "",
                eos_token=tokens[eos] if eos is not None else "",
            )
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
