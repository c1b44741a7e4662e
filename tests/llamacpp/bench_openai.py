"""One streamed request through the openai package's sync client, timed from
just before it is sent (tests/llamacpp/bench.sh).

    python bench_openai.py URL MODEL REQUEST_JSON

prints {"ttfc_ms": .., "chunks": .., "span_s": .., "bytes": ..}: the time to
the first content chunk, the content chunks, the time from the first to the
last, the content's bytes. The request's fields other than model, messages
and stream go in extra_body when the client has no argument for them.
"""

import json
import sys
import time

from openai import OpenAI


def main():
    url, model, request = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = OpenAI(base_url=url.rstrip("/") + "/v1", api_key="x", max_retries=0)
    known = {"temperature", "seed", "max_tokens"}
    kwargs = {k: v for k, v in request.items() if k in known}
    extra = {k: v for k, v in request.items() if k not in known | {"messages", "model", "stream"}}
    start = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, messages=request["messages"], stream=True, extra_body=extra, **kwargs
    )
    first = last = None
    chunks = size = 0
    for event in stream:
        if not event.choices:
            continue
        content = event.choices[0].delta.content
        if content:
            last = time.perf_counter()
            if first is None:
                first = last
            chunks += 1
            size += len(content.encode())
    print(json.dumps({"ttfc_ms": (first - start) * 1000, "chunks": chunks,
                      "span_s": last - first, "bytes": size}))


if __name__ == "__main__":
    main()
