"""HF transformers `generate` on the fixed peer workload (tokens/s).

  ../peers-venv/bin/python beneficial_rl/bench/peers/hf_generate.py \
      [--runs=10] [--warmup=2]

A `LlamaForCausalLM` built from the workload config (vocab 4096, hidden 256,
4 layers, 4 heads, 2 KV heads, MLP 704, RoPE theta 1e4, untied, float32) with
random init (`torch.manual_seed(0)`), on CPU with 2 threads. One timed call
is `model.generate` on 32 prompts of 64 random tokens (int64[32, 64], the
same ids as our benchmark) with `do_sample=True`, temperature 1.0, no top-k /
top-p filtering, `min_new_tokens = max_new_tokens = 64` (EOS can never stop a
row early), KV cache on. Reported: new tokens/s = 2048 / median seconds,
min / max over the runs. `generate` exposes no phase split.
"""

from __future__ import annotations

import time

import peer_common  # Sets the thread variables before torch loads.

import torch  # pylint: disable=g-import-not-at-top,g-bad-import-order
import transformers  # pylint: disable=g-import-not-at-top,g-bad-import-order


def build_model() -> transformers.LlamaForCausalLM:
  """The workload model, random init with seed 0, float32, eval mode."""
  w = peer_common.WORKLOAD
  config = transformers.LlamaConfig(
      vocab_size=w["vocab_size"], hidden_size=w["hidden_size"],
      intermediate_size=w["mlp_dim"], num_hidden_layers=w["num_layers"],
      num_attention_heads=w["num_heads"],
      num_key_value_heads=w["num_kv_heads"], head_dim=w["head_dim"],
      rope_parameters={"rope_type": "default",
                       "rope_theta": w["rope_theta"]},
      rms_norm_eps=w["norm_eps"], tie_word_embeddings=False,
      max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
      pad_token_id=0, dtype=torch.float32)
  torch.manual_seed(w["seed"])
  return transformers.LlamaForCausalLM(config).eval()


def main() -> None:
  args = peer_common.parse_args(__doc__.splitlines()[0])
  torch.set_num_threads(peer_common.NUM_THREADS)
  w = peer_common.WORKLOAD
  load_before = peer_common.load_average()
  with peer_common.stdout_to_stderr():
    model = build_model()
    prompts = torch.from_numpy(
        peer_common.random_prompts(w["sample_prompts"], w["seed"]))
    mask = torch.ones_like(prompts)
    gen_kwargs = dict(
        attention_mask=mask, do_sample=True, temperature=w["temperature"],
        top_k=0, top_p=1.0, min_new_tokens=w["new_tokens"],
        max_new_tokens=w["new_tokens"], use_cache=True)
    seconds = []
    for i in range(args.warmup + args.runs):
      torch.manual_seed(i)
      t0 = time.perf_counter()
      with torch.inference_mode():
        out = model.generate(prompts, **gen_kwargs)
      dt = time.perf_counter() - t0
      if i >= args.warmup:
        seconds.append(dt)
    new_tokens = (out.shape[1] - prompts.shape[1]) * out.shape[0]
    expected = w["sample_prompts"] * w["new_tokens"]
    if new_tokens != expected:
      raise RuntimeError(f"generate produced {new_tokens} new tokens, "
                         f"expected {expected}")
  tok_s = [new_tokens / s for s in seconds]
  peer_common.emit({
      "framework": "transformers", "version": transformers.__version__,
      "torch": torch.__version__, "api": "LlamaForCausalLM.generate",
      "metric": "sampler_tokens_per_s",
      "median": new_tokens / peer_common.summary(seconds)["median"],
      "min": min(tok_s), "max": max(tok_s),
      "seconds": peer_common.summary(seconds), "tokens_per_run": new_tokens,
      "runs": args.runs, "warmup": args.warmup, "phases": None,
      "load_before": load_before, "load_after": peer_common.load_average(),
  })


if __name__ == "__main__":
  main()
