/* bench_requests.h — the LLM request bodies the benchmarks send: over the
 * wire by bench_client, straight into the metered path by bench_transfer,
 * so both figures are for the same call. */
#ifndef LM_BENCH_REQUESTS_H
#define LM_BENCH_REQUESTS_H

static const char body_json[] =
    "{\"model\":\"gpt-4o-mini\",\"max_tokens\":64,\"messages\":[{\"role\":"
    "\"user\",\"content\":\"Why is the sky blue? Answer in one sentence.\"}]}";
static const char body_stream[] =
    "{\"model\":\"gpt-4o-mini\",\"max_tokens\":64,\"stream\":true,"
    "\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":"
    "\"user\",\"content\":\"Why is the sky blue? Answer in one sentence.\"}]}";

#endif
