-- wrk script for bench/ingest.py: POSTs Prometheus Alertmanager webhook bodies (version 4), each
-- with N alerts never sent before (a fingerprint and an instance label of their own).
--
--   wrk -t2 -c32 -d20s -s bench/ingest.lua http://127.0.0.1:8765/api/v1/integrations/alertmanager/ \
--       -- <integration token> <alerts per notification> <run id>
--
-- At the end it prints one line "BENCH-JSON {...}" with the counts and latency percentiles (µs).
-- Fingerprints are "<run>-<wrk thread>-<request>-<alert>": the stored alerts can be matched to requests.

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local ALERT = [[{"status":"firing","labels":{"alertname":"PaymentLatencyHigh","instance":"cashier-%s:9100",]]
  .. [["job":"cashier","severity":"critical","team":"payments","system":"cashier"},]]
  .. [["annotations":{"summary":"收银台支付耗时过高","description":"p99 latency 2.4s > 2s for 3m on cashier-%s"},]]
  .. [["startsAt":"2026-09-01T02:10:00.000Z","endsAt":"0001-01-01T00:00:00Z",]]
  .. [["generatorURL":"http://prometheus.example.com:9090/graph?g0.expr=pay_latency","fingerprint":"%s"}]]

local HEAD = [[{"version":"4","groupKey":"{}:{alertname=\"PaymentLatencyHigh\"}","truncatedAlerts":0,]]
  .. [["status":"firing","receiver":"stability-tracker","groupLabels":{"alertname":"PaymentLatencyHigh"},]]
  .. [["commonLabels":{"alertname":"PaymentLatencyHigh","job":"cashier","severity":"critical","team":"payments",]]
  .. [["system":"cashier"},"commonAnnotations":{"summary":"收银台支付耗时过高"},]]
  .. [["externalURL":"http://alertmanager.example.com:9093","alerts":[%s]}]]

counter = 0  -- global: done() reads it with thread:get()

function init(args)
  per = tonumber(args[2])
  run = args[3]
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[1] }
end

function request()
  counter = counter + 1
  local alerts = {}
  for i = 1, per do
    local id = string.format("%s-%d-%d-%d", run, tid, counter, i)
    alerts[i] = string.format(ALERT, id, id, id)
  end
  return wrk.format("POST", nil, headers, string.format(HEAD, table.concat(alerts, ",")))
end

function done(summary, latency, requests)
  local e = summary.errors
  local sent = 0  -- requests generated (so possibly sent), including those in flight when wrk stopped
  for _, thread in ipairs(threads) do
    sent = sent + thread:get("counter")
  end
  io.write(string.format(
    'BENCH-JSON {"sent":%d,"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,'
      .. '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"mean_us":%.1f}\n',
    sent, summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
  ))
end
