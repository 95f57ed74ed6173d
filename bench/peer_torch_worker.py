#!/usr/bin/env python3
"""The PyTorch side of bench/peer_torch.py: Hugging Face BertForSequenceClassification, eager.

Run by bench/peer_torch.py with the peer environment's python (PyTorch and transformers are not
dependencies of this toolkit); it imports nothing of the toolkit. It answers commands, one JSON
object a line on stdin, with one line on stdout after REPLY_PREFIX (anything else a library
prints is on stderr or skipped):

  {"op": "setup", "batches": NPZ, "configs": {name: bert_config dict}, "threads": N,
   "train_model": name, "train_precisions": [...], "serve_models": [...]}
      → {"versions": {...}, "setup_seconds": s}
  {"op": "train", "precision": "fp32"|"bf16", "batch": INDEX, "steps": K}
      → {"seconds": [K step times]}      (the NPZ's train_ids_INDEX / train_labels_INDEX)
  {"op": "serve", "model": name, "batch": B, "seq": S, "requests": N}
      → {"seconds": [N request times]}   (the NPZ's serve_ids_B_S)
  {"op": "quit"}

A training step: forward, cross-entropy, backward, global-norm clipping to 1.0 and AdamW
(weight decay 0.01), as the toolkit's optimizer does; bf16 is torch.autocast(cpu, bfloat16)
around the forward pass (fp32 weights, as ours). A request: int32 arrays in, softmax
probabilities out as a numpy array, under torch.inference_mode(), fp32 (ours exports fp32).
Attention is `sdpa` everywhere.
"""

import json
import os
import sys
import time
import traceback

REPLY_PREFIX = "PEER_REPLY "


def command_loop(handlers, stdin=None, stdout=None):
  """Answers the commands on stdin with handlers[op](command) until "quit" or end of input.

  A handler's exception is answered {"error": traceback tail} and the loop goes on.
  """
  stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
  for line in stdin:
    if not line.strip():
      continue
    command = json.loads(line)
    if command["op"] == "quit":
      break
    try:
      reply = handlers[command["op"]](command)
    except Exception:  # pylint: disable=broad-except  (reported to the driver)
      reply = {"error": traceback.format_exc()[-2000:]}
    stdout.write(REPLY_PREFIX + json.dumps(reply) + "\n")
    stdout.flush()


class TorchPeer(object):
  """Models, optimizers and inputs of the PyTorch side."""

  def setup(self, command):
    started = time.perf_counter()
    import numpy as np
    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification

    self.np, self.torch = np, torch
    torch.set_num_threads(int(command["threads"]))
    torch.manual_seed(1)
    self.arrays = dict(np.load(command["batches"]))

    def model(name):
      c = command["configs"][name]
      config = BertConfig(
          vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
          num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
          intermediate_size=c["intermediate_size"], hidden_act=c["hidden_act"],
          hidden_dropout_prob=c["hidden_dropout_prob"],
          attention_probs_dropout_prob=c["attention_probs_dropout_prob"],
          max_position_embeddings=c["max_position_embeddings"],
          type_vocab_size=c["type_vocab_size"], initializer_range=c["initializer_range"],
          num_labels=2, attn_implementation="sdpa")
      return BertForSequenceClassification(config)

    self.train_models = {}
    for precision in command.get("train_precisions", []):
      net = model(command["train_model"]).train()
      decay = [p for n, p in net.named_parameters() if not _no_decay(n)]
      rest = [p for n, p in net.named_parameters() if _no_decay(n)]
      optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                     {"params": rest, "weight_decay": 0.0}],
                                    lr=1e-4, betas=(0.9, 0.999), eps=1e-6)
      self.train_models[precision] = (net, optimizer)
    self.serve_models = {name: model(name).eval() for name in command.get("serve_models", [])}
    return {"versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "numpy": np.__version__, "threads": torch.get_num_threads(),
                         "attention": "sdpa"},
            "setup_seconds": time.perf_counter() - started}

  def train(self, command):
    torch = self.torch
    net, optimizer = self.train_models[command["precision"]]
    ids = self.arrays["train_ids_%d" % command["batch"]]
    labels = self.arrays["train_labels_%d" % command["batch"]]
    bf16 = command["precision"] == "bf16"
    seconds = []
    for _ in range(command["steps"]):
      t = time.perf_counter()
      input_ids = torch.from_numpy(ids).long()
      with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = net(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                  token_type_ids=torch.zeros_like(input_ids),
                  labels=torch.from_numpy(labels).long())
      optimizer.zero_grad(set_to_none=True)
      out.loss.backward()
      torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
      optimizer.step()
      loss = float(out.loss)  # as our trainer fetches the loss every step
      seconds.append(time.perf_counter() - t)
      if loss != loss:
        raise RuntimeError("loss is nan")
    return {"seconds": seconds}

  def serve(self, command):
    torch = self.torch
    net = self.serve_models[command["model"]]
    ids = self.arrays["serve_ids_%d_%d" % (command["batch"], command["seq"])]
    mask, segments = self.np.ones_like(ids), self.np.zeros_like(ids)
    seconds = []
    with torch.inference_mode():
      for _ in range(command["requests"]):
        t = time.perf_counter()
        logits = net(input_ids=torch.from_numpy(ids).long(),
                     attention_mask=torch.from_numpy(mask).long(),
                     token_type_ids=torch.from_numpy(segments).long()).logits
        torch.softmax(logits, dim=-1).numpy()
        seconds.append(time.perf_counter() - t)
    return {"seconds": seconds}


def _no_decay(name):
  """Biases and layer norms are not decayed (the toolkit's NO_DECAY_PATTERNS)."""
  return name.endswith(".bias") or "LayerNorm" in name


def main():
  # This file's folder (bench/, put first on sys.path) holds modules whose names could shadow
  # the peer environment's packages (markdown.py): drop it before torch is imported.
  here = os.path.dirname(os.path.abspath(__file__))
  sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
  peer = TorchPeer()
  command_loop({"setup": peer.setup, "train": peer.train, "serve": peer.serve})
  return 0


if __name__ == "__main__":
  sys.exit(main())
