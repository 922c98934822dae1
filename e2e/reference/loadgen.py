"""Bounded load on a titan: N concurrent streaming chat requests, each
stream issuing R requests one after another. Loopback only.

Usage: loadgen.py BASE_URL MODEL STREAMS REQUESTS_PER_STREAM MAX_TOKENS
stdout: JSON {"streams", "requests", "completion_tokens", "seconds",
"tokens_per_second", "p50_seconds", "p99_seconds", "errors"}.
"""

import asyncio
import json
import sys
import time

import openai

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "List some facts about the moon.",
    "Describe a walk through a forest in autumn.",
]


async def stream_worker(client, model, worker, requests, max_tokens, stats):
    for r in range(requests):
        started = time.perf_counter()
        try:
            resp = await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": PROMPTS[(worker + r) % len(PROMPTS)]}],
                max_tokens=max_tokens,
                temperature=0.8,
                seed=worker * 1000 + r,
                stream=True,
                stream_options={"include_usage": True},
            )
            tokens = 0
            async for chunk in resp:
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
            stats["tokens"] += tokens
            stats["latencies"].append(time.perf_counter() - started)
        except openai.APIError as e:
            stats["errors"].append(str(e))


async def main():
    base_url, model = sys.argv[1], sys.argv[2]
    streams, requests, max_tokens = (int(a) for a in sys.argv[3:6])
    client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=600)
    stats = {"tokens": 0, "latencies": [], "errors": []}
    started = time.perf_counter()
    await asyncio.gather(*(stream_worker(client, model, w, requests, max_tokens, stats) for w in range(streams)))
    seconds = time.perf_counter() - started
    lat = sorted(stats["latencies"]) or [0.0]
    print(json.dumps({
        "streams": streams,
        "requests": streams * requests,
        "completion_tokens": stats["tokens"],
        "seconds": seconds,
        "tokens_per_second": stats["tokens"] / seconds,
        "p50_seconds": lat[len(lat) // 2],
        "p99_seconds": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "errors": stats["errors"][:5],
    }))


if __name__ == "__main__":
    asyncio.run(main())
