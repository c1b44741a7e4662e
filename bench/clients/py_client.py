"""The Python peers in one benchmark scenario, with a JSON result line.

Usage: python py_client.py openai|httpx SCENARIO BASE_URL [N] [CHUNKS]
  (scenarios as the C clients: complete N, stream CHUNKS, streams N CHUNKS,
  once)

openai: the official package's sync client, OpenAI(base_url=..., api_key="x",
max_retries=0). httpx: one keep-alive httpx.Client, iter_lines, json.loads
of every event's data.
"""

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402

PROMPT = "Write a long story about a benchmark, one token at a time."
MESSAGES = [{"role": "user", "content": PROMPT}]


def peak_rss_kib():
    """VmHWM: unlike wait4's ru_maxrss, it ignores the forked runner's memory."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def main():
    lib, scenario, base = sys.argv[1], sys.argv[2], sys.argv[3].rstrip("/")
    rest = [int(x) for x in sys.argv[4:]]
    if scenario == "complete":
        n, chunks = rest[0], 0
    elif scenario == "stream":
        n, chunks = 1, rest[0]
    elif scenario == "streams":
        n, chunks = rest[0], rest[1]
    elif scenario == "once":
        n, chunks = 1, 0
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    streaming = scenario in ("stream", "streams")
    total_bytes = total_chunks = 0

    if lib == "openai":
        from openai import OpenAI

        client = OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            if streaming:
                stream = client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True, max_tokens=chunks
                )
                for chunk in stream:
                    if chunk.choices:
                        content = chunk.choices[0].delta.content
                        if content:
                            total_bytes += len(content.encode())
                            total_chunks += 1
            else:
                answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                total_bytes += len(answer.choices[0].message.content.encode())
        t1, c1 = time.perf_counter(), time.process_time()
        client.close()
    elif lib == "httpx":
        import httpx

        client = httpx.Client(base_url=base, timeout=60.0)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            if streaming:
                body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True,
                        "max_tokens": chunks}
                done = False
                with client.stream("POST", "/v1/chat/completions", json=body,
                                   headers={"Accept": "text/event-stream"}) as r:
                    r.raise_for_status()
                    for line in r.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].lstrip(" ")
                        if data == "[DONE]":
                            done = True
                            continue
                        event = json.loads(data)
                        choices = event.get("choices")
                        if choices:
                            content = choices[0].get("delta", {}).get("content")
                            if content:
                                total_bytes += len(content.encode())
                                total_chunks += 1
                if not done:
                    raise SystemExit("no [DONE]")
            else:
                body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": False}
                r = client.post("/v1/chat/completions", json=body,
                                headers={"Accept": "application/json"})
                r.raise_for_status()
                total_bytes += len(r.json()["choices"][0]["message"]["content"].encode())
        t1, c1 = time.perf_counter(), time.process_time()
        client.close()
    else:
        raise SystemExit(f"unknown library {lib}")

    print(json.dumps({
        "client": f"py-{lib}", "scenario": scenario, "seconds": t1 - t0, "cpu_seconds": c1 - c0,
        "with_setup_seconds": time.perf_counter() - STARTED, "content_bytes": total_bytes,
        "chunks": total_chunks, "requests": n, "peak_rss_kib": peak_rss_kib(),
    }))


if __name__ == "__main__":
    main()
