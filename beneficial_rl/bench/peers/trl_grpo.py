"""TRL `GRPOTrainer`, one GRPO step of the fixed peer workload (seconds).

  ../peers-venv/bin/python beneficial_rl/bench/peers/trl_grpo.py \
      [--runs=10] [--warmup=2]

The model is the HF `LlamaForCausalLM` of `hf_generate.py` (workload config,
random init, float32), saved to a temporary directory because TRL loads the
policy and its frozen reference from one path. Prompts are 8 texts of 64 random ids read by a
word-level tokenizer whose vocabulary is the ids "0" .. "4095" (built here;
nothing is downloaded), so every prompt is exactly 64 tokens. EOS = pad =
id 4095, which `min_new_tokens=64` keeps from ever being sampled: no early
stop, every completion has 64 tokens.

`GRPOConfig`: 8 prompts x `num_generations=4` = 32 completions per step
(`per_device_train_batch_size=32`, one gradient-accumulation step),
`max_completion_length=64`, temperature 1.0, no top-k / top-p, `beta=0.04`
(KL to the frozen reference model TRL keeps), `learning_rate=1e-5` constant,
AdamW (weight decay 1e-4, as optax's default in our benchmark),
`num_iterations=1`, `loss_type="grpo"` (per-token loss averaged over each
sequence, then over sequences), float32 (`bf16=False`), no gradient
checkpointing, CPU, 2 torch threads, no logging / saving. The reward is the
constant-time one of the workload (fraction of even ids in the completion).

One timed run is one optimizer step, from the trainer's `on_step_begin` to
`on_step_end` callback: generation, reference log-probs, reward, advantages,
forward + backward, AdamW step. Phases come from wrapping the trainer's own
methods: `generation` = `_generate`; `reference_reward` =
`_generate_and_score_completions` minus generation; `update` = the rest.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import peer_common  # Sets the thread variables before torch loads.
import hf_generate

import torch  # pylint: disable=g-import-not-at-top,g-bad-import-order
import transformers  # pylint: disable=g-import-not-at-top,g-bad-import-order


def build_tokenizer() -> transformers.PreTrainedTokenizerFast:
  """Word-level tokenizer over the ids "0" .. "4095"; EOS = pad = 4095."""
  from tokenizers import Tokenizer, models, pre_tokenizers  # pylint: disable=g-import-not-at-top
  w = peer_common.WORKLOAD
  vocab = {str(i): i for i in range(w["vocab_size"])}
  tok = Tokenizer(models.WordLevel(vocab, unk_token="0"))
  tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  last = str(w["vocab_size"] - 1)
  return transformers.PreTrainedTokenizerFast(
      tokenizer_object=tok, eos_token=last, pad_token=last)


# Completion lengths seen by the reward, one list per step (checks no row
# stopped early).
SEEN_LENGTHS: list[list[int]] = []


def even_reward(completion_ids: list[list[int]], **unused: Any
                ) -> list[float]:
  """Constant-time reward: fraction of even ids in each completion."""
  SEEN_LENGTHS.append([len(c) for c in completion_ids])
  return peer_common.even_fraction(completion_ids)


class StepTimer(transformers.TrainerCallback):
  """Wall time of each optimizer step, plus the wrapped phases."""

  def __init__(self):
    self.total: list[float] = []
    self.phase: dict[str, list[float]] = {"generation": [],
                                          "generate_and_score": []}
    self._t0 = 0.0

  def wrap(self, fn, name: str):
    def timed(*args, **kwargs):
      t0 = time.perf_counter()
      out = fn(*args, **kwargs)
      self.phase[name].append(time.perf_counter() - t0)
      return out
    return timed

  def on_step_begin(self, args, state, control, **kwargs):
    self._t0 = time.perf_counter()

  def on_step_end(self, args, state, control, **kwargs):
    self.total.append(time.perf_counter() - self._t0)


def main() -> None:
  args = peer_common.parse_args(__doc__.splitlines()[0])
  torch.set_num_threads(peer_common.NUM_THREADS)
  import datasets  # pylint: disable=g-import-not-at-top
  import trl  # pylint: disable=g-import-not-at-top
  w = peer_common.WORKLOAD
  steps = args.warmup + args.runs
  load_before = peer_common.load_average()
  with peer_common.stdout_to_stderr(), tempfile.TemporaryDirectory() as tmp:
    # TRL builds its reference model from the policy's path, so the random
    # policy is saved locally and both are loaded from there (same weights).
    hf_generate.build_model().save_pretrained(f"{tmp}/model")
    ids = peer_common.random_prompts(w["grpo_prompts"], w["seed"] + 1)
    dataset = datasets.Dataset.from_dict(
        {"prompt": [" ".join(str(int(t)) for t in row) for row in ids]})
    config = trl.GRPOConfig(
        output_dir=f"{tmp}/out", model_init_kwargs={"dtype": "float32"},
        use_cpu=True, bf16=False, fp16=False,
        gradient_checkpointing=False, report_to="none", save_strategy="no",
        logging_strategy="no", disable_tqdm=True, seed=w["seed"],
        max_steps=steps, per_device_train_batch_size=(
            w["grpo_prompts"] * w["group_size"]),
        gradient_accumulation_steps=1, num_generations=w["group_size"],
        max_completion_length=w["new_tokens"],
        temperature=w["temperature"], top_p=1.0, top_k=0,
        generation_kwargs={"min_new_tokens": w["new_tokens"]},
        beta=w["kl_coef"], num_iterations=w["inner_epochs"],
        loss_type="grpo", learning_rate=w["learning_rate"],
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=1e-4,
        shuffle_dataset=False, dataloader_num_workers=0)
    timer = StepTimer()
    trainer = trl.GRPOTrainer(
        model=f"{tmp}/model", reward_funcs=even_reward, args=config,
        train_dataset=dataset, processing_class=build_tokenizer(),
        callbacks=[timer])
    trainer._generate = timer.wrap(trainer._generate, "generation")  # pylint: disable=protected-access
    trainer._generate_and_score_completions = timer.wrap(  # pylint: disable=protected-access
        trainer._generate_and_score_completions, "generate_and_score")  # pylint: disable=protected-access
    trainer.train()
  if len(timer.total) != steps:
    raise RuntimeError(f"timed {len(timer.total)} steps, expected {steps}")
  lengths = [n for step in SEEN_LENGTHS for n in step]
  if len(lengths) != steps * w["grpo_prompts"] * w["group_size"] or min(
      lengths) != w["new_tokens"]:
    raise RuntimeError(f"expected {steps} x 32 completions of "
                       f"{w['new_tokens']} tokens, got {len(lengths)} with "
                       f"lengths {min(lengths)}..{max(lengths)}")
  gen = timer.phase["generation"][args.warmup:]
  score = timer.phase["generate_and_score"][args.warmup:]
  total = timer.total[args.warmup:]
  phases = {
      "generation": peer_common.summary(gen),
      "reference_reward": peer_common.summary(
          [s - g for s, g in zip(score, gen)]),
      "update": peer_common.summary([t - s for t, s in zip(total, score)]),
      "total": peer_common.summary(total),
  }
  peer_common.emit({
      "framework": "trl", "version": trl.__version__,
      "transformers": transformers.__version__, "torch": torch.__version__,
      "api": "trl.GRPOTrainer", "metric": "grpo_step_seconds",
      **peer_common.summary(total), "phases": phases,
      "completions": w["grpo_prompts"] * w["group_size"],
      "completion_tokens_per_step": sum(SEEN_LENGTHS[-1]),
      "runs": args.runs, "warmup": args.warmup,
      "load_before": load_before, "load_after": peer_common.load_average(),
  })


if __name__ == "__main__":
  main()
