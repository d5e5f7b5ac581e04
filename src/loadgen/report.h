// The outputs of `synod bench`: the progress line, the human-readable summary and the JSON
// object (the same fields, for scripts). Pure formatting.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "loadgen/runner.h"

namespace synod::loadgen {

// One line: elapsed time, ops/s since the previous line, p50/p99 so far, errors so far.
// `ok_before` and `measured_before` are the previous line's counters.ok and measured_ns.
std::string FormatProgress(const Progress& p, uint64_t ok_before, int64_t measured_before);

// Several lines: configuration, throughput, errors by kind, latency percentiles in ms.
std::string FormatSummary(const RunOptions& options, const RunResult& result);

// One object with the summary's fields: "ops_per_sec", "requests" {ok, reads, writes, nil,
// lost, errors}, "errors" {kind: count}, "error_samples" {kind: its first message}, "latency_ms"
// {p50, p90, p99, p99_9, max, mean, min}, "config" {...}, "measured_seconds", "connects",
// "backlog", "interrupted".
nlohmann::json ToJson(const RunOptions& options, const RunResult& result);

// Successful requests per second of the measured period; 0 when it is empty.
double OpsPerSecond(const RunResult& result);

}  // namespace synod::loadgen
