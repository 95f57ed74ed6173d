"""The performance benchmark's markdown report, from the raw figures bench/perf_measure.py returns.

`format_report(data)` is pure (figures in, markdown out), so `bench/run.py --render FILE.json`
rewrites a report without measuring again. The targets' PASS/FAIL thresholds are THRESHOLDS.
"""

import os
import statistics

from bench import markdown
from bench.markdown import clean, pct, ratio_pct
from bench.perf_workers import (BATCH_SIZE, MAX_SEQ_LENGTH, PRECISIONS, SETTLED, XLA_CPU_FLAG,
                                log)

# The targets, in one place (the report's "Targets" and "defaults" sections).
THRESHOLDS = {
    # Teacher training at fixed 128 / fp32: FLOP/s against the GEMM peak (and the GEMM alongside).
    "training_share_of_peak": 0.5,
    # Dynamic padding against fixed 128: examples/s per unit of GEMM speed alongside.
    "dynamic_padding_gain": 1.8,
    # Serving at batch 8, seq 128: the student's speedup over the teacher / their FLOP ratio.
    "serving_speedup_per_flop_ratio": 0.9,
    # A precision or XLA setting earns a default only when at least this much faster everywhere.
    "default_gain": 1.1,
}

XLA_LABELS = {"off": "off", "scope": "on", "global": "global"}


def write_report(data, output):
  """Prints the report of `data` (perf_measure.measure's result) and writes it to `output`."""
  report = format_report(data)
  print(report)
  with open(output, "w", encoding="utf-8") as f:
    f.write(report)
  log("Wrote %s (raw figures in %s.json)" % (output, os.path.splitext(output)[0]))
  return 0


def format_report(data):
  """The markdown report of perf_measure.measure's result (or its JSON, read back)."""
  combos = [tuple(c) for c in data["combos"]]
  runs = {tuple(c): results for c, results in data["runs"]}
  prepared = data["prepared"]
  peaks, gemm_lines = gemm_section(data["gemm_runs"])
  best = {combo: _best(runs.get(combo, []), "share_fp32") for combo in combos}
  serve_ratio, serving_lines = serving_section(data["serving"], data["serve_memory"], prepared)
  lines = (header_section(data) + gemm_lines + training_section(combos, runs, best, peaks) +
           serving_lines + student_shapes_section(data.get("serving_extra", []), prepared) +
           targets_section(runs, best, peaks, serve_ratio) + defaults_section(combos, best))
  return "\n".join(lines) + "\n"


def header_section(data):
  prepared = data["prepared"]
  machine = data.get("machine")
  if not machine:  # a run from before the machine was recorded: this one
    from bench import perf_measure  # pylint: disable=g-import-not-at-top
    machine = perf_measure.cpu_description()
  lines = [
      "# Performance benchmark%s" % (" (--quick)" if data["quick"] else ""), "",
      "Machine: %s, %d CPUs; load average %.1f before, %.1f after (other jobs share this "
      "machine); the run took %.0f s." % (machine, data.get("cpus") or os.cpu_count(),
                                          data["load_before"][0], data["load_after"][0],
                                          data["elapsed"]),
      "Data: %s; median %.0f characters, %.0f tokens with [CLS]/[SEP] (mean %.1f); %d examples "
      "reach %d tokens." % (prepared["source"], prepared["median_chars"],
                            prepared["median_tokens"], prepared["mean_tokens"],
                            prepared["truncated"], MAX_SEQ_LENGTH)]
  return lines + list(data["notes"]) + [""]


def gemm_section(gemm_runs):
  """({precision: best median GFLOP/s over sizes and runs}, the section's lines)."""
  peaks, rows = {}, []
  for index, run in enumerate(gemm_runs):
    if "error" in run:
      rows.append([index + 1, "failed: %s" % clean(run["error"])])
      continue
    for r in run["gemm"]:
      peaks[r["precision"]] = max(peaks.get(r["precision"], 0.0), r["median"])
      rows.append([index + 1, r["precision"], r["n"], "%.1f" % r["median"], "%.1f" % r["max"],
                   len(r["gflops"])])
  lines = ["## GEMM peak: tf.matmul of n×n variables in a graph session", "",
           "Run 1 before everything, run 2 after training.", ""]
  lines += markdown.table(["run", "precision", "n", "median GFLOP/s", "best GFLOP/s", "repeats"],
                          rows)
  lines += ["", "Peak used below (best median over sizes and runs): %s." %
            ", ".join("%s %.1f GFLOP/s" % (p, peaks[p]) for p in PRECISIONS if p in peaks), ""]
  return peaks, lines


def training_section(combos, runs, best, peaks):
  lines = [
      "## Training, batch %d: TFRecord → input_fn → Trainer's model_fn graph → train_op" %
      BATCH_SIZE, "",
      "FLOPs = 3 × forward (modeling.forward_flops_per_token: embeddings excluded, attention "
      "included) of the padded shapes run; *real* counts each example at its own length. "
      "Dynamic padding = length buckets (classifier_data). XLA *on* = `--use_xla` (the train "
      "step built in a jit_scope); *global* = session global_jit_level with TF_XLA_FLAGS=%s. "
      "A step whose batch shape had run fewer than %d times (a rare bucket's first runs; XLA "
      "compiles a shape on its second run) counts at that shape's steady time (*unsettled* "
      "steps). *vs GEMM alongside*: the run's FLOP/s divided by a 2048² GEMM timed between its "
      "step windows in the same process, median over windows: the load-independent measure "
      "of efficiency, used to pick each row's best run and for the comparisons below. Peak "
      "RSS: ru_maxrss of the run's process before its GEMM check." % (XLA_CPU_FLAG, SETTLED), ""]
  rows = []
  for combo in combos:
    model, padding, precision, xla = combo
    results, b = runs.get(combo, []), best[combo]
    if b is None:
      error = next((r["error"] for r in results if "error" in r), "not run")
      rows.append([model, padding, precision, XLA_LABELS[xla], "failed: %s" % clean(error)])
      continue
    rows.append([
        model, padding, precision, XLA_LABELS[xla], "%.1f" % b["examples_per_sec"],
        "%.0f" % b["step_ms"], "%.1f" % b["padded_gflops"],
        ratio_pct(b["padded_gflops"], peaks.get("fp32")),
        ratio_pct(b["padded_gflops"], peaks.get(precision)), pct(b.get("share_fp32")),
        pct(b.get("share_" + precision)), "%.1f" % b["real_gflops"],
        "%.2f" % b["padding_overhead"], "%.0f" % b["maxrss_mib"],
        ", ".join("%.1f (%d, %d)" % (r["examples_per_sec"], r["steps"], r["unsettled_steps"])
                  if "error" not in r else "failed" for r in results)])
  lines += markdown.table(
      ["model", "padding", "precision", "XLA", "ex/s", "step ms", "padded GFLOP/s",
       "% fp32 peak", "% own peak", "vs fp32 GEMM alongside", "vs own GEMM alongside",
       "real GFLOP/s", "padded / real tokens", "peak RSS MiB",
       "runs: ex/s (timed steps, unsettled)"], rows)
  return lines + [""]


def _intra_op_words(serving):
  """The session config of the serving runs (runs before the field was recorded had the
  default)."""
  recorded = {r.get("intra_op_threads") for run in serving if "error" not in run
              for r in run["serving"]}
  if recorded == {1}:
    return ("session config as `scripts/serve.sh` gives the server: each op on one thread, as "
            "the exports record (`serving_intra_op_threads`)")
  return "default session config"


def serving_section(serving, serve_memory, prepared):
  """({(batch, seq): (student speedup, FLOP ratio)}, the section's lines)."""
  if "both" in serve_memory:
    memory = "both models in one process (load + all shapes): %.0f MiB" % serve_memory["both"]
  else:
    memory = ("each model alone in a process (load + all shapes): teacher %.0f MiB, student "
              "%.0f MiB" % (serve_memory.get("teacher", float("nan")),
                            serve_memory.get("student", float("nan"))))
  lines = [
      "## Serving: exported SavedModel loaded with tf.compat.v1.saved_model.loader", "",
      "One session.run per request (random ids, full mask), %s; teacher "
      "and student requests alternate in one process (%d run%s, the second loading the models "
      "in the other order; medians over runs). Peak RSS, %s. FLOP ratio: "
      "forward_flops_per_token of teacher / student." % (
          _intra_op_words(serving), len(serving), "s" if len(serving) > 1 else "", memory), ""]
  flops = prepared["flops_per_token"]
  serve_ratio, rows = {}, []
  merged = _merge_serving(serving)
  for (batch, seq) in sorted(merged, key=lambda k: (k[1], k[0])):
    t, s = merged[(batch, seq)].get("teacher"), merged[(batch, seq)].get("student")
    if not t or not s:
      continue
    t_med = statistics.median(r["median_ms"] for r in t)
    s_med = statistics.median(r["median_ms"] for r in s)
    flop_ratio = flops["teacher"][str(seq)] / flops["student"][str(seq)]
    speedup = t_med / s_med
    serve_ratio[(batch, seq)] = (speedup, flop_ratio)
    rows.append([batch, seq, "%.2f" % t_med, "%.2f" % statistics.median(r["p95_ms"] for r in t),
                 "%.2f" % s_med, "%.2f" % statistics.median(r["p95_ms"] for r in s),
                 "%.2f×" % speedup, "%.2f×" % flop_ratio, "%.2f" % (speedup / flop_ratio)])
  lines += markdown.table(["batch", "seq", "teacher median ms", "teacher p95 ms",
                           "student median ms", "student p95 ms", "student speedup",
                           "FLOP ratio", "speedup / FLOP ratio"], rows)
  for run in serving:
    if "error" in run:
      lines += ["", "Serving run failed: %s" % clean(run["error"], 400)]
  profile = next((run["profile"] for run in serving if run.get("profile")), None)
  if profile and "teacher" in profile and "student" in profile:
    t, s = profile["teacher"], profile["student"]
    lines += ["", "Where the time goes at batch 8, seq 128 (each op's fastest time over traced "
              "requests, summed; robust to other load): teacher %.1f ms in %d ops, of which "
              "matmuls %.1f ms; student %.1f ms in %d ops, of which matmuls %.1f ms. Ratios: all "
              "ops %.2f×, matmuls alone %.2f×, FLOPs %.2f×." % (
                  t["total_ms"], t["ops"], t["matmul_ms"], s["total_ms"], s["ops"],
                  s["matmul_ms"], t["total_ms"] / s["total_ms"], t["matmul_ms"] / s["matmul_ms"],
                  flops["teacher"]["128"] / flops["student"]["128"])]
  return serve_ratio, lines + [""]


def student_shapes_section(serving_extra, prepared):
  """Batch 8, seq 128: the speedup / FLOP ratio of students of other shapes, and one thread."""
  rows = [r for run in serving_extra if "error" not in run for r in run["serving"]]
  teacher = {r["threads"]: r["median_ms"] for r in rows if r["model"] == "teacher"}
  if not rows or not teacher:
    return []
  profile = next((run["profile"] for run in serving_extra if run.get("profile")), {})
  flops = {name: f["128"] for name, f in prepared["flops_per_token"].items()}
  cells = []
  for r in rows:
    config = prepared["configs"][r["model"]]
    speedup = teacher[r["threads"]] / r["median_ms"]
    ratio = flops["teacher"] / flops[r["model"]]
    ops = profile.get(r["model"]) if r["threads"] is None else None
    split = "–"
    if ops and "attention_matmul_ms" in ops:
      dense = ops["matmul_ms"] - ops["attention_matmul_ms"]
      split = "%.1f / %.1f / %.1f" % (dense, ops["attention_matmul_ms"],
                                      ops["total_ms"] - ops["matmul_ms"])
    cells.append([r["model"], "%d × %d" % (config["num_hidden_layers"], config["hidden_size"]),
                  r["threads"] or "all", "%.2f" % r["median_ms"], "%.2f×" % speedup,
                  "%.2f×" % ratio, "%.2f" % (speedup / ratio), split])
  lines = ["### Batch 8, seq 128: students of other shapes, and one thread per request", "",
           "Same process, requests interleaved with the teacher's. *threads 1*: intra- and "
           "inter-op pools of one thread (each request on one core, as a server handling "
           "concurrent requests would run). Op time as above, split into dense-layer matmuls, "
           "attention's batched matmuls and everything else.", ""]
  lines += markdown.table(["model", "layers × hidden", "threads", "median ms",
                           "speedup vs teacher", "FLOP ratio", "speedup / FLOP ratio",
                           "op ms: dense matmul / attention matmul / other"], cells)
  return lines + [""]


def targets_section(runs, best, peaks, serve_ratio):
  share_min = THRESHOLDS["training_share_of_peak"]
  dynamic_min = THRESHOLDS["dynamic_padding_gain"]
  serving_min = THRESHOLDS["serving_speedup_per_flop_ratio"]
  rows = []
  fixed32 = best.get(("teacher", "fixed", "fp32", "off"))
  if fixed32 and "fp32" in peaks:
    share = fixed32["padded_gflops"] / peaks["fp32"]
    rows.append(["teacher training, fixed 128, fp32: FLOP/s / fp32 GEMM peak",
                 "%.1f / %.1f GFLOP/s = %s" % (fixed32["padded_gflops"], peaks["fp32"],
                                                pct(share)),
                 "≥ %s" % pct(share_min), _verdict(share >= share_min)])
    if "share_fp32" in fixed32:
      rows.append(["the same against the fp32 GEMM timed alongside it (same load)",
                   "%s (GEMM %.1f GFLOP/s)" % (pct(fixed32["share_fp32"]), fixed32["gemm_fp32"]),
                   "≥ %s" % pct(share_min), _verdict(fixed32["share_fp32"] >= share_min)])
  fastest = [(c, b) for c, b in best.items()
             if b and c[0] == "teacher" and c[1] == "fixed" and "share_fp32" in b]
  if fastest:
    # Fastest = most examples per unit of machine speed (fp32 GEMM alongside).
    combo, b = max(fastest, key=lambda cb: _normalized(cb[1]))
    precision = combo[2]
    if precision in peaks:
      share = b["padded_gflops"] / peaks[precision]
      rows.append([
          "teacher training, fixed 128, fastest setting (%s, XLA %s): FLOP/s / %s GEMM peak" %
          (precision, XLA_LABELS[combo[3]], precision),
          "%.1f / %.1f GFLOP/s = %s (against the %s GEMM alongside: %s)" % (
              b["padded_gflops"], peaks[precision], pct(share), precision,
              pct(b.get("share_" + precision))),
          "≥ %s" % pct(share_min), _verdict(share >= share_min)])
  for model in ("teacher", "student"):
    f_runs = runs.get((model, "fixed", "fp32", "off"), [])
    d_runs = runs.get((model, "dynamic", "fp32", "off"), [])
    pairs = [(fr, dr) for fr, dr in zip(f_runs, d_runs) if "error" not in fr and "error" not in dr]
    if pairs:
      raw = [dr["examples_per_sec"] / fr["examples_per_sec"] for fr, dr in pairs]
      normalized = [_normalized(dr) / _normalized(fr) for fr, dr in pairs]
      ratio = statistics.median(normalized)
      rows.append([
          "%s training, fp32: dynamic padding / fixed 128, examples/s" % model,
          "%.2f× per unit of GEMM speed alongside (median of %d back-to-back pairs: %s; raw "
          "examples/s ratios %s)" % (ratio, len(pairs), ", ".join("%.2f×" % r for r in normalized),
                                     ", ".join("%.2f×" % r for r in raw)),
          "≥ %g×" % dynamic_min, _verdict(ratio >= dynamic_min)])
  if (8, 128) in serve_ratio:
    speedup, flop_ratio = serve_ratio[(8, 128)]
    rows.append(["serving, batch 8, seq 128: student speedup / FLOP ratio",
                 "%.2f× / %.2f× = %.2f" % (speedup, flop_ratio, speedup / flop_ratio),
                 "≥ %g" % serving_min, _verdict(speedup >= serving_min * flop_ratio)])
  return (["## Targets", ""] +
          markdown.table(["target", "measured", "threshold", "result"], rows) + [""])


def defaults_section(combos, best):
  lines = ["## What the figures say about defaults", "",
           "Ratios of examples/s per unit of the fp32 GEMM speed timed alongside each run (so "
           "other load cancels), raw examples/s ratio in brackets; > 1 means faster than the "
           "default.", ""]
  gains = {}

  def compare(model, padding, precision, xla, what):
    base = best.get((model, padding, "fp32", "off"))
    other = best.get((model, padding, precision, xla))
    if not (base and other and "gemm_fp32" in base and "gemm_fp32" in other):
      return
    gain = _normalized(other) / _normalized(base)
    gains.setdefault((precision, xla), []).append((padding, gain))
    lines.append("- %s, %s padding: %s = %.2f× (%.2f×)" % (
        model, padding, what, gain, other["examples_per_sec"] / base["examples_per_sec"]))

  precisions = [p for p in PRECISIONS if any(c[2] == p for c in combos)]
  for model in ("teacher", "student"):
    f, d = best.get((model, "fixed", "fp32", "off")), best.get((model, "dynamic", "fp32", "off"))
    if f and d and "gemm_fp32" in f and "gemm_fp32" in d:
      lines.append("- %s: dynamic padding / fixed 128 = %.2f× (%.2f×)" % (
          model, _normalized(d) / _normalized(f), d["examples_per_sec"] / f["examples_per_sec"]))
    for padding in ("fixed", "dynamic"):
      for precision in precisions:
        if precision != "fp32":
          compare(model, padding, precision, "off", "%s / fp32" % precision)
      for precision in precisions:
        for xla in ("scope", "global"):
          compare(model, padding, precision, xla, "%s with XLA %s / fp32 without" %
                  (precision, XLA_LABELS[xla]))
  lines.append("")
  dynamic = [_normalized(best[(m, "dynamic", "fp32", "off")]) /
             _normalized(best[(m, "fixed", "fp32", "off")]) for m in ("teacher", "student")
             if best.get((m, "dynamic", "fp32", "off")) and best.get((m, "fixed", "fp32", "off"))]
  if dynamic:
    lines.append("Defaults: padding — %s." % (
        "keep `--padding dynamic`" if min(dynamic) > 1 else
        "dynamic padding is not faster everywhere here"))
  # A setting earns a default only if it is clearly faster in every comparison made, the
  # default (dynamic) padding included.
  for (precision, xla), measured in sorted(gains.items()):
    what = "%s%s" % (precision, "" if xla == "off" else " with XLA %s" % XLA_LABELS[xla])
    values = [gain for _, gain in measured]
    if min(values) < THRESHOLDS["default_gain"]:
      verdict_text = "keep it off by default"
    elif "dynamic" not in {padding for padding, _ in measured}:
      verdict_text = ("faster at fixed padding only, not measured with the default dynamic "
                      "padding: keep it off by default")
    else:
      verdict_text = "worth making the default"
    lines.append("Defaults: %s — %.2f× to %.2f× of fp32 without XLA → %s." % (
        what, min(values), max(values), verdict_text))
  return lines + [""]


def _verdict(ok):
  return "**PASS**" if ok else "**FAIL**"


def _best(results, key="examples_per_sec"):
  good = [r for r in results if "error" not in r]
  return max(good, key=lambda r: r.get(key, r["examples_per_sec"])) if good else None


def _normalized(result):
  """Examples/s per GFLOP/s of the fp32 GEMM timed alongside: comparable across load."""
  return result["examples_per_sec"] / result["gemm_fp32"] if "gemm_fp32" in result else None


def _merge_serving(serving):
  """{(batch, seq): {model: [result of each run]}} over the runs that did not fail."""
  merged = {}
  for run in serving:
    if "error" in run:
      continue
    for r in run["serving"]:
      merged.setdefault((r["batch"], r["seq"]), {}).setdefault(r["model"], []).append(r)
  return merged
