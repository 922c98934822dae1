"""Drives a running `titan serve` with the official `openai` Python client.

Usage: openai_client.py BASE_URL MODEL
stdout: one JSON object with what each call returned, for the Rust test
(e2e/tests/openai_api.rs) to check.
"""

import json
import sys

import openai


def main():
    base_url, model = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
    out = {}
    question = [{"role": "user", "content": "What is the capital of France?"}]

    r = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=40)
    out["chat"] = {
        "content": r.choices[0].message.content,
        "role": r.choices[0].message.role,
        "finish_reason": r.choices[0].finish_reason,
        "usage": r.usage.model_dump(),
        "object": r.object,
        "id": r.id,
    }

    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=question,
            temperature=0,
            max_tokens=40,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    out["chat_stream"] = {
        "content": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
        "first_role": chunks[0].choices[0].delta.role if chunks[0].choices else None,
        "finish_reasons": [c.choices[0].finish_reason for c in chunks if c.choices],
        "usage": next((c.usage.model_dump() for c in chunks if c.usage), None),
        "objects": sorted({c.object for c in chunks}),
        "ids": sorted({c.id for c in chunks}),
    }

    r = client.completions.create(model=model, prompt="The capital of Italy is", temperature=0, max_tokens=12)
    out["completion"] = {"text": r.choices[0].text, "finish_reason": r.choices[0].finish_reason, "usage": r.usage.model_dump()}
    chunks = list(
        client.completions.create(model=model, prompt="The capital of Italy is", temperature=0, max_tokens=12, stream=True)
    )
    out["completion_stream"] = {
        "text": "".join(c.choices[0].text for c in chunks if c.choices),
        "finish_reasons": [c.choices[0].finish_reason for c in chunks if c.choices],
    }

    def sampled(seed):
        r = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Tell me a story about a dragon."}],
            temperature=0.9,
            top_p=0.95,
            seed=seed,
            max_completion_tokens=24,
        )
        return r.choices[0].message.content, r.usage.completion_tokens, r.choices[0].finish_reason

    out["seeded"] = [sampled(123), sampled(123), sampled(124)]

    r = client.completions.create(model=model, prompt="One, two, three, four,", temperature=0, max_tokens=30, stop=[" six", "seven"])
    out["stop"] = {"text": r.choices[0].text, "finish_reason": r.choices[0].finish_reason}
    r = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=40, stop="France")
    out["chat_stop"] = {"content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason}

    out["models"] = [m.id for m in client.models.list().data]

    errors = {}
    for name, call in {
        "unknown_model": lambda: client.chat.completions.create(model="nope", messages=question),
        "negative_max_tokens": lambda: client.chat.completions.create(model=model, messages=question, max_tokens=-5),
        "huge_max_tokens": lambda: client.chat.completions.create(model=model, messages=question, max_tokens=10**9),
        "empty_messages": lambda: client.chat.completions.create(model=model, messages=[]),
        "bad_temperature": lambda: client.chat.completions.create(model=model, messages=question, temperature=7),
    }.items():
        try:
            call()
            errors[name] = None
        except openai.APIStatusError as e:
            errors[name] = {"status": e.status_code, "body": e.body}
    out["errors"] = errors
    print(json.dumps(out))


if __name__ == "__main__":
    main()
