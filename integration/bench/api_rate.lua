-- wrk script for the HTTP verdict API: POST /v1/screen at a fixed pace. Each connection waits
-- 1 ms between requests, so N connections offer about N * 1000 / (1 + latency in ms)
-- requests a second (Debian's wrk has no rate option). The bearer token comes from FW_TOKEN.
--   FW_TOKEN=$(head -1 /tmp/tokens) wrk -t1 -c6 -d20s -s integration/bench/api_rate.lua \
--       http://127.0.0.1:8081/v1/screen
-- Prints p50/p99/p99.9 and the request and error counts.
wrk.method = "POST"
wrk.body   = '{"caller":"+8613800000009","callee":"+8613900000001"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("FW_TOKEN") or "")
function delay()
  return 1
end
function done(summary, latency, requests)
  io.write(string.format("p50 %d us, p99 %d us, p99.9 %d us, max %d us, requests %d, errors %d\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    summary.requests, summary.errors.status + summary.errors.timeout + summary.errors.connect))
end
