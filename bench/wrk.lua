-- The one request shape of a scenario, and one machine-readable result line.
--
-- Read from the environment (bench/run.sh sets them):
--   BENCH_BODY    a form body: the request becomes a POST of
--                 application/x-www-form-urlencoded
--   BENCH_EXPECT  the status every answer must have (default 200)
--   BENCH_CHECK   1: look at every answer's status (needed when BENCH_EXPECT
--                 is not 200, and to count 503s apart); this costs the client
--                 a little, so the throughput scenarios leave it off and rely
--                 on wrk's own count of statuses >= 400
--
--   BENCH_HISTOGRAM  a file to append the latency histogram to, one
--                 "<microseconds> <count>" line per distinct latency, so that
--                 runs can be merged into exact percentiles
--
-- done() prints: RESULT <req/s> <p50 us> <p99 us> <requests> <errors> <503s> <timeouts> <seconds>

local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

local expect = tonumber(os.getenv("BENCH_EXPECT") or "200") or 200
local check = os.getenv("BENCH_CHECK") == "1" or expect ~= 200

unexpected = 0
busy = 0

if check then
  function response(status, headers, body)
    if status == 503 then
      busy = busy + 1
    elseif status ~= expect then
      unexpected = unexpected + 1
    end
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local e = summary.errors
  local wrong, overloaded = 0, 0
  for _, t in ipairs(threads) do
    wrong = wrong + (t:get("unexpected") or 0)
    overloaded = overloaded + (t:get("busy") or 0)
  end
  -- Without the per-answer check, every status >= 400 is an error.
  local http = check and wrong or e.status
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT %.1f %d %d %d %d %d %d %.3f\n",
    summary.requests / seconds,
    latency:percentile(50), latency:percentile(99),
    summary.requests,
    http + e.connect + e.read + e.write + e.timeout,
    overloaded, e.timeout, seconds))
  local path = os.getenv("BENCH_HISTOGRAM")
  if path and path ~= "" then
    local file = assert(io.open(path, "a"))
    -- latency(i): the i-th distinct latency (microseconds) and its count.
    for i = 1, #latency do
      local value, count = latency(i)
      file:write(string.format("%d %d\n", value, count))
    end
    file:close()
  end
end
