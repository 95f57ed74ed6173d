"""What a distillation run matches besides logits, and on what schedule: flags, presets and JSON.

No TensorFlow here (the entry point checks its flags before importing it); distill_matches.py
builds the losses this module describes.

A match compares one student tensor with one teacher tensor:

  {"feature": "hidden" | "attention" | "embedding" | "pooled",
   "teacher_layer": i, "student_layer": j,       # hidden and attention only; -1 is the last
   "loss": "mse" | "cosine" | "kl" | "pkd",
   "weight": w}                                  # a number or a schedule (below)

  hidden     layer outputs [batch, seq, hidden]: mse, cosine (per real token) or pkd (the
             normalised [CLS] states, BERT-PKD); a student narrower or wider than the teacher goes
             through a learned projection (student → teacher width), trained, never exported.
  attention  [batch, heads, seq, seq], equal head counts: mse of the scores (TinyBERT) or kl of
             the distributions (MiniLM), over real query rows and real keys only.
  embedding  the embedding output [batch, seq, hidden] (the student's before dropout), as hidden.
  pooled     the pooler output [batch, hidden]: mse, cosine or pkd.

A schedule is a number (constant) or {"schedule": "constant" | "linear" | "cosine", "start": a,
"end": b, "from_step": s0, "to_step": s1}: a until s0, b from s1 (default 0 and the run's
training steps), linear or half-cosine in between.

--distill_config=FILE.json holds {"matches": [...], "preset": name, "layer_map": [...],
"alpha": schedule, "temperature": schedule, "teacher": index, "stage": "full" | "intermediate",
"soft_loss": "ce" | "mse"}, every key optional; flags name the common cases (--distill_preset,
--distill_layer_map, --distill_stage, --match_teacher, --soft_loss).
"""

import json
import math

from absl import flags

from bert.errors import UsageError

FEATURES = ("hidden", "attention", "embedding", "pooled")
LOSSES = {"hidden": ("mse", "cosine", "pkd"), "embedding": ("mse", "cosine"),
          "attention": ("mse", "kl"), "pooled": ("mse", "cosine", "pkd")}
LAYERED = ("hidden", "attention")
PRESETS = ("none", "tinybert", "pkd_skip", "pkd_last", "minilm", "last_hidden")
STAGES = ("full", "intermediate")
SOFT_LOSSES = ("ce", "mse")
SCHEDULES = ("constant", "linear", "cosine")
# BERT-PKD's beta: its normalised-[CLS] distances are small next to the cross-entropies.
PKD_WEIGHT = 100.0
CONFIG_KEYS = ("matches", "preset", "layer_map", "alpha", "temperature", "teacher", "stage",
               "soft_loss")


def define_flags(flag_values):
  """The distillation-match flags, defined into flag_values."""
  flags.DEFINE_string("distill_config", None, "JSON file of intermediate matches, alpha and "
                      "temperature schedules (see bert/distill_config.py for its format).",
                      flag_values=flag_values)
  flags.DEFINE_enum("distill_preset", "none", list(PRESETS), "Intermediate matches besides the "
                    "logits: tinybert (hidden + attention scores + embeddings, uniform layer map), "
                    "pkd_skip / pkd_last (normalised [CLS] states of every k-th / the last "
                    "teacher layers), minilm (last-layer attention KL), last_hidden (last-layer "
                    "states, mse over real tokens); none: logits only.",
                    flag_values=flag_values)
  flags.DEFINE_string("distill_layer_map", None, "Student layer j matches teacher layer map[j], "
                      "one index per student layer (default: the preset's, uniform for tinybert "
                      "and pkd_skip).", flag_values=flag_values)
  flags.DEFINE_enum("distill_stage", "full", list(STAGES), "full: the logit/label loss plus the "
                    "matches; intermediate: the matches alone (--alpha ignored), TinyBERT's first "
                    "stage, continued by a full run with --init_checkpoint.",
                    flag_values=flag_values)
  flags.DEFINE_string("match_teacher", None, "With several --teacher_model: the one the "
                      "intermediate matches use (index from 0, or its path; default the first).",
                      flag_values=flag_values)
  flags.DEFINE_enum("teacher_average", "probs", ["probs", "logits"], "Several teachers: average "
                    "their temperature-softened probabilities, or their logits (weighted).",
                    flag_values=flag_values)
  flags.DEFINE_enum("soft_loss", "ce", list(SOFT_LOSSES), "The soft (teacher) term: ce, Hinton's "
                    "T^2-scaled cross-entropy with the teacher's softened probabilities; mse, the "
                    "mean squared difference of the logits (Ba & Caruana 2014, Tang et al. 2019; "
                    "no temperature, several teachers' logits averaged).",
                    flag_values=flag_values)


def parse_teacher_models(text, flag="--teacher_model"):
  """'a,b:0.5' → [("a", 1.0), ("b", 0.5)]: paths with optional positive weights."""
  teachers = []
  for item in (text or "").split(","):
    item = item.strip()
    if not item:
      raise UsageError("%s: empty entry in %r (expected PATH[:WEIGHT],PATH[:WEIGHT],...)" %
                       (flag, text))
    path, weight = item, 1.0
    if ":" in item:
      head, tail = item.rsplit(":", 1)
      try:
        path, weight = head, float(tail)
      except ValueError:
        path, weight = item, 1.0
      if not weight > 0 or not math.isfinite(weight):
        raise UsageError("%s: weight of %s must be a positive number, got %s" % (flag, head, tail))
    teachers.append((path, weight))
  return teachers


def parse_layer_map(text, flag="--distill_layer_map"):
  if text is None or text == "":
    return None
  if isinstance(text, list):
    items = text
  else:
    items = text.split(",")
  try:
    return [int(item) for item in items]
  except (TypeError, ValueError):
    raise UsageError("%s: expected comma-separated teacher layer indices such as 1,3, got %r" %
                     (flag, text))


def parse_schedule(value, what):
  """A number or a schedule dict → {"schedule", "start", "end", "from_step", "to_step"}."""
  if isinstance(value, bool):
    raise UsageError("%s: expected a number or a schedule, got %r" % (what, value))
  if isinstance(value, (int, float)):
    return {"schedule": "constant", "start": float(value), "end": float(value), "from_step": 0,
            "to_step": None}
  if not isinstance(value, dict):
    raise UsageError("%s: expected a number or {\"schedule\": \"linear\", \"start\": a, "
                     "\"end\": b}, got %r" % (what, value))
  unknown = sorted(set(value) - {"schedule", "start", "end", "from_step", "to_step"})
  if unknown:
    raise UsageError("%s: unknown schedule key %r (expected schedule, start, end, from_step, "
                     "to_step)" % (what, unknown[0]))
  kind = value.get("schedule", "constant")
  if kind not in SCHEDULES:
    raise UsageError("%s: schedule %r is not one of %s" % (what, kind, ", ".join(SCHEDULES)))
  if "start" not in value:
    raise UsageError("%s: schedule needs \"start\"" % what)
  spec = {"schedule": kind, "from_step": value.get("from_step", 0),
          "to_step": value.get("to_step")}
  for key in ("start", "end"):
    number = value.get(key, value["start"])
    if isinstance(number, bool) or not isinstance(number, (int, float)):
      raise UsageError("%s: schedule %s must be a number, got %r" % (what, key, number))
    spec[key] = float(number)
  for key in ("from_step", "to_step"):
    step = spec[key]
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
      raise UsageError("%s: schedule %s must be a non-negative integer, got %r" % (what, key, step))
  if kind == "constant":
    spec["end"] = spec["start"]
  return spec


def schedule_bounds(spec, total_steps):
  """(from_step, to_step) of a schedule in a run of total_steps."""
  start = spec["from_step"] or 0
  end = spec["to_step"] if spec["to_step"] is not None else total_steps
  return start, max(end, start)


def schedule_value(spec, step, total_steps):
  """The value a schedule gives at a global step (the reference the graph's version follows)."""
  if spec["schedule"] == "constant":
    return spec["start"]
  begin, end = schedule_bounds(spec, total_steps)
  progress = 1.0 if end == begin else min(max((step - begin) / float(end - begin), 0.0), 1.0)
  if spec["schedule"] == "linear":
    return spec["start"] + (spec["end"] - spec["start"]) * progress
  return spec["end"] + (spec["start"] - spec["end"]) * 0.5 * (1.0 + math.cos(math.pi * progress))


def check_range(spec, low, high, what):
  for key in ("start", "end"):
    if not low <= spec[key] <= high:
      raise UsageError("%s: must be in [%s, %s], got %s" % (what, low, high, spec[key]))


def read_config_file(path):
  """The JSON object of --distill_config (keys checked, values checked later)."""
  if not path:
    return {}
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except OSError as e:
    raise UsageError("--distill_config %s: cannot read (%s)" % (path, e.strerror))
  except ValueError as e:
    raise UsageError("--distill_config %s: not valid JSON (%s)" % (path, " ".join(str(e).split())))
  if not isinstance(data, dict):
    raise UsageError("--distill_config %s: expected a JSON object {\"matches\": [...], ...}" % path)
  unknown = sorted(set(data) - set(CONFIG_KEYS))
  if unknown:
    raise UsageError("--distill_config %s: unknown key %r (expected %s)" %
                     (path, unknown[0], ", ".join(CONFIG_KEYS)))
  return data


def check_flags(fv):
  """Value checks of the match flags (no TensorFlow, files read: --distill_config only)."""
  teachers = parse_teacher_models(fv.teacher_model)
  data = read_config_file(fv.distill_config)
  where = "--distill_config %s" % fv.distill_config
  if "preset" in data and data["preset"] not in PRESETS:
    raise UsageError("%s: preset %r is not one of %s" % (where, data["preset"], ", ".join(PRESETS)))
  if "stage" in data and data["stage"] not in STAGES:
    raise UsageError("%s: stage %r is not one of %s" % (where, data["stage"], ", ".join(STAGES)))
  if "soft_loss" in data and data["soft_loss"] not in SOFT_LOSSES:
    raise UsageError("%s: soft_loss %r is not one of %s" % (where, data["soft_loss"],
                                                           ", ".join(SOFT_LOSSES)))
  parse_layer_map(fv.distill_layer_map)
  for key in ("alpha", "temperature"):
    if key in data:
      check_range(parse_schedule(data[key], "%s: %s" % (where, key)),
                  0.0 if key == "alpha" else 1e-6, 1.0 if key == "alpha" else float("inf"),
                  "%s: %s" % (where, key))
  matches = data.get("matches", [])
  if not isinstance(matches, list):
    raise UsageError("%s: \"matches\" must be a list of match objects" % where)
  preset = data.get("preset", fv.distill_preset)
  stage = data.get("stage", fv.distill_stage)
  if fv.teacher_logits == "cached":
    if matches or preset != "none":
      raise UsageError("--teacher_logits=cached: intermediate matches (--distill_preset/"
                       "--distill_config) need the teacher in the student's graph; use "
                       "--teacher_logits=online")
  if stage == "intermediate" and not matches and preset == "none":
    raise UsageError("--distill_stage=intermediate: needs matches (--distill_preset or "
                     "--distill_config), it trains on them alone")
  match_teacher(fv.match_teacher, [path for path, _ in teachers])


def match_teacher(value, paths):
  """Index of the teacher the matches use: --match_teacher as an index or a path."""
  if value is None or value == "":
    return 0
  if str(value).lstrip("-").isdigit():
    index = int(value)
    if not 0 <= index < len(paths):
      raise UsageError("--match_teacher: %s is out of range (%d teacher(s): 0-%d)" %
                       (value, len(paths), len(paths) - 1))
    return index
  if value in paths:
    return paths.index(value)
  raise UsageError("--match_teacher %s: not one of --teacher_model's paths (%s)" %
                   (value, ", ".join(paths)))


def _layer(value, num_layers, who, where):
  if isinstance(value, bool) or not isinstance(value, int):
    raise UsageError("%s: %s must be an integer layer index, got %r" % (where, who, value))
  if not -num_layers <= value < num_layers:
    raise UsageError("%s: %s %d is out of range (%s has %d layers: 0-%d, or -1 for the last)" %
                     (where, who, value, who.split("_")[0], num_layers, num_layers - 1))
  return value % num_layers


def preset_matches(preset, layer_map, teacher_layers, student_layers):
  """The matches of a preset; layer_map[j] is the teacher layer of student layer j."""
  if preset == "none":
    return []
  where = "--distill_preset=%s" % preset
  if layer_map is not None:
    if len(layer_map) != student_layers:
      raise UsageError("--distill_layer_map: expected %d teacher layer indices (one per student "
                       "layer), got %d" % (student_layers, len(layer_map)))
    for index in layer_map:
      _layer(index, teacher_layers, "teacher_layer", "--distill_layer_map")
  if preset == "pkd_last":
    default = [teacher_layers - student_layers + j for j in range(student_layers)]
  else:
    default = [(j + 1) * teacher_layers // student_layers - 1 for j in range(student_layers)]
  if min(default) < 0 and layer_map is None:
    raise UsageError("%s: the student has %d layers, more than the teacher's %d; give "
                     "--distill_layer_map" % (where, student_layers, teacher_layers))
  layers = layer_map if layer_map is not None else default

  def match(feature, loss, student_layer=None, weight=1.0):
    entry = {"feature": feature, "loss": loss, "weight": weight}
    if student_layer is not None:
      entry.update(student_layer=student_layer, teacher_layer=layers[student_layer])
    return entry

  if preset == "tinybert":
    matches = [match("embedding", "mse")]
    for j in range(student_layers):
      matches += [match("hidden", "mse", j), match("attention", "mse", j)]
    return matches
  if preset == "minilm":
    return [match("attention", "kl", student_layers - 1)]
  if preset == "last_hidden":  # a FitNets hint at the top: the states the classifier reads
    return [match("hidden", "mse", student_layers - 1)]
  # BERT-PKD: every student layer but the last (the logits cover it).
  if student_layers < 2:
    raise UsageError("%s: needs a student of at least 2 layers (the last is covered by the "
                     "logits), this one has %d" % (where, student_layers))
  return [match("hidden", "pkd", j, PKD_WEIGHT) for j in range(student_layers - 1)]


def normalize_match(entry, index, teacher_config, student_config, where):
  """One match checked against both models; returns it with defaults, indices ≥ 0 and a name."""
  where = "%s: match %d" % (where, index)
  if not isinstance(entry, dict):
    raise UsageError("%s: expected an object {\"feature\": ..., \"loss\": ...}, got %r" %
                     (where, entry))
  unknown = sorted(set(entry) - {"feature", "teacher_layer", "student_layer", "loss", "weight"})
  if unknown:
    raise UsageError("%s: unknown key %r (expected feature, teacher_layer, student_layer, loss, "
                     "weight)" % (where, unknown[0]))
  feature = entry.get("feature")
  if feature not in FEATURES:
    raise UsageError("%s: feature %r is not one of %s" % (where, feature, ", ".join(FEATURES)))
  loss = entry.get("loss", LOSSES[feature][0])
  if loss not in LOSSES[feature]:
    raise UsageError("%s: loss %r does not apply to %s (expected %s)" %
                     (where, loss, feature, ", ".join(LOSSES[feature])))
  match = {"feature": feature, "loss": loss,
           "weight": parse_schedule(entry.get("weight", 1.0), "%s: weight" % where)}
  check_range(match["weight"], 0.0, float("inf"), "%s: weight" % where)
  if feature in LAYERED:
    for who, config in (("teacher_layer", teacher_config), ("student_layer", student_config)):
      if who not in entry:
        raise UsageError("%s: %s matches need \"%s\"" % (where, feature, who))
      match[who] = _layer(entry[who], config["num_hidden_layers"], who, where)
    name = "%s_s%d_t%d_%s" % (feature, match["student_layer"], match["teacher_layer"], loss)
  else:
    for who in ("teacher_layer", "student_layer"):
      if who in entry:
        raise UsageError("%s: %s matches take no %s" % (where, feature, who))
    name = "%s_%s" % (feature, loss)
  if feature == "attention":
    teacher_heads = teacher_config["num_attention_heads"]
    student_heads = student_config["num_attention_heads"]
    if teacher_heads != student_heads:
      raise UsageError("%s: attention matches need equal head counts, the teacher has %d "
                       "heads and the student %d" % (where, teacher_heads, student_heads))
  match["name"] = name
  return match


class DistillConfig(object):
  """The checked matches, alpha and temperature schedules, stage and matched teacher of a run.

  Attributes:
    matches: list of {"feature", "loss", "weight" (schedule), "teacher_layer", "student_layer"
      (layered features), "name" (unique: its summary is "match/<name>")}.
    alpha, temperature: schedules.
    stage: "full" or "intermediate".
    teacher: index of the teacher the matches use.
    soft_loss: "ce" or "mse", the soft term of the logit loss.
  """

  def __init__(self, teacher_configs, student_config, teacher_paths, alpha, temperature,
               config_file=None, preset="none", layer_map=None, stage="full", teacher=None,
               soft_loss="ce"):
    """teacher_configs: the bert_config dict of each teacher (teacher_paths: their
    --teacher_model paths); student_config: the student's. The rest: the flags' values
    (--alpha, --temperature, --distill_config, --distill_preset, --distill_layer_map,
    --distill_stage, --match_teacher as teacher, --soft_loss); --distill_config's keys take
    precedence."""
    data = read_config_file(config_file)
    where = "--distill_config %s" % config_file if config_file else "--distill_preset"
    self.teacher = match_teacher(data.get("teacher", teacher), list(teacher_paths))
    teacher_config = teacher_configs[self.teacher]
    self.stage = data.get("stage", stage)
    self.soft_loss = data.get("soft_loss", soft_loss)
    self.alpha = parse_schedule(data.get("alpha", alpha), "alpha")
    self.temperature = parse_schedule(data.get("temperature", temperature), "temperature")
    preset = data.get("preset", preset or "none")
    layer_map = parse_layer_map(data.get("layer_map", layer_map))
    entries = preset_matches(preset, layer_map, teacher_config["num_hidden_layers"],
                             student_config["num_hidden_layers"])
    entries = entries + list(data.get("matches", []))
    self.matches = []
    names = {}
    for index, entry in enumerate(entries):
      match = normalize_match(entry, index, teacher_config, student_config, where)
      count = names.get(match["name"], 0)
      names[match["name"]] = count + 1
      if count:
        match["name"] = "%s_%d" % (match["name"], count)
      self.matches.append(match)
    if self.stage == "intermediate" and not self.matches:
      raise UsageError("--distill_stage=intermediate: needs matches (--distill_preset or "
                       "--distill_config), it trains on them alone")

  def describe(self):
    """Lines for the log: alpha, temperature and stage, then one per match with its weight."""

    def text(spec):
      if spec["schedule"] == "constant":
        return "%g" % spec["start"]
      return "%s %g→%g" % (spec["schedule"], spec["start"], spec["end"])

    soft = "temperature %s" % text(self.temperature)
    if self.soft_loss == "mse":
      soft = "soft loss: mse of the logits (no temperature)"
    lines = ["distillation: stage %s, alpha %s%s, %s" %
             (self.stage, text(self.alpha), " (ignored)" if self.stage == "intermediate" else "",
              soft)]
    for match in self.matches:
      lines.append("match %s weight %s" % (match["name"], text(match["weight"])))
    return lines
