"""Tunix `Sampler` on the fixed peer workload (tokens/s).

  ../peers-venv/bin/python beneficial_rl/bench/peers/tunix_sampler.py \
      [--runs=10] [--warmup=2]

Tunix's `tunix.generate.sampler.Sampler` on its own `Llama3` model built with
the workload config (see `tunix_model.py` for the model, the toy id
tokenizer and what Tunix 0.1.7 does differently), KV cache of 128 positions
(64 prompt + 64 new, the smallest it accepts). One timed call is
`sampler(prompts, max_generation_steps=64, temperature=1.0, top_p=1.0,
seed=i)` on 32 prompts of 64 random ids (the same ids as our benchmark),
end to end: tokenising, one jitted prefill, one jitted `lax.while_loop`
decode, copying tokens back and detokenising. top_p=1.0 with no top_k is
Tunix's plain categorical over the full vocabulary. Reported: new tokens/s =
2048 / median seconds, min / max; the sampler exposes no phase split.
"""

from __future__ import annotations

import importlib.metadata
import time

import peer_common  # Sets the thread variables before jax loads.
import tunix_model

import jax  # pylint: disable=g-import-not-at-top,g-bad-import-order


def main() -> None:
  args = peer_common.parse_args(__doc__.splitlines()[0])
  from tunix.generate import sampler as sampler_lib  # pylint: disable=g-import-not-at-top
  w = peer_common.WORKLOAD
  load_before = peer_common.load_average()
  with peer_common.stdout_to_stderr():
    model = tunix_model.build_model(w["seed"])
    cfg = model.config
    sampler = sampler_lib.Sampler(
        model, tunix_model.IdTokenizer(w["vocab_size"]),
        sampler_lib.CacheConfig(
            cache_size=w["prompt_len"] + w["new_tokens"],
            num_layers=cfg.num_layers, num_kv_heads=cfg.num_kv_heads,
            head_dim=cfg.head_dim))
    prompts = tunix_model.prompt_texts(w["sample_prompts"], w["seed"])
    seconds = []
    for i in range(args.warmup + args.runs):
      t0 = time.perf_counter()
      out = sampler(prompts, max_generation_steps=w["new_tokens"],
                    max_prompt_length=w["prompt_len"],
                    temperature=w["temperature"], top_p=1.0, top_k=None,
                    seed=i)
      dt = time.perf_counter() - t0
      if i >= args.warmup:
        seconds.append(dt)
    new_tokens = sum(len(t) for t in out.tokens)
    expected = w["sample_prompts"] * w["new_tokens"]
    if new_tokens != expected:
      raise RuntimeError(f"sampler produced {new_tokens} new tokens, "
                         f"expected {expected}")
  tok_s = [new_tokens / s for s in seconds]
  peer_common.emit({
      "framework": "tunix",
      "version": importlib.metadata.version("google-tunix"),
      "jax": jax.__version__, "api": "tunix.generate.sampler.Sampler",
      "metric": "sampler_tokens_per_s",
      "median": new_tokens / peer_common.summary(seconds)["median"],
      "min": min(tok_s), "max": max(tok_s),
      "seconds": peer_common.summary(seconds), "tokens_per_run": new_tokens,
      "runs": args.runs, "warmup": args.warmup, "phases": None,
      "notes": tunix_model.NOTES,
      "load_before": load_before, "load_after": peer_common.load_average(),
  })


if __name__ == "__main__":
  main()
