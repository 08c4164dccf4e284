/* bench_requests.h — the LLM request bodies the benchmarks send: over the
 * wire by bench_client (and over TLS by bench_tls), straight into the
 * metered path by bench_transfer, so the figures are for the same call;
 * and the JSON answer bench_server (and bench_tls) sends. */
#ifndef LM_BENCH_REQUESTS_H
#define LM_BENCH_REQUESTS_H

static const char body_json[] =
    "{\"model\":\"gpt-4o-mini\",\"max_tokens\":64,\"messages\":[{\"role\":"
    "\"user\",\"content\":\"Why is the sky blue? Answer in one sentence.\"}]}";
static const char body_stream[] =
    "{\"model\":\"gpt-4o-mini\",\"max_tokens\":64,\"stream\":true,"
    "\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":"
    "\"user\",\"content\":\"Why is the sky blue? Answer in one sentence.\"}]}";

/* bench_server's canned OpenAI chat.completion (~0.6 KB); bench_tls
 * answers with it over TLS. */
static const char resp_json[] =
    "{\n  \"id\": \"chatcmpl-Dx0Xq5Xx9rHB2ehcHZCRDsnuymUXc\",\n"
    "  \"object\": \"chat.completion\",\n  \"created\": 1782955818,\n"
    "  \"model\": \"gpt-4o-mini-2024-07-18\",\n  \"choices\": [\n    {\n"
    "      \"index\": 0,\n      \"message\": {\n        \"role\": \"assistant\",\n"
    "        \"content\": \"The sky is blue because of Rayleigh scattering of "
    "sunlight by the molecules of the air.\",\n        \"refusal\": null,\n"
    "        \"annotations\": []\n      },\n      \"logprobs\": null,\n"
    "      \"finish_reason\": \"stop\"\n    }\n  ],\n  \"usage\": {\n"
    "    \"prompt_tokens\": 100,\n    \"completion_tokens\": 20,\n"
    "    \"total_tokens\": 120,\n    \"prompt_tokens_details\": {\n"
    "      \"cached_tokens\": 0,\n      \"audio_tokens\": 0\n    },\n"
    "    \"completion_tokens_details\": {\n      \"reasoning_tokens\": 0,\n"
    "      \"audio_tokens\": 0,\n      \"accepted_prediction_tokens\": 0,\n"
    "      \"rejected_prediction_tokens\": 0\n    }\n  },\n"
    "  \"service_tier\": \"default\",\n"
    "  \"system_fingerprint\": \"fp_d0469e1700\"\n}\n";

#endif
