"""The reward-model training binary on a smoke data dir, tiny shapes."""

from __future__ import annotations

import collections
import hashlib
import json
import pathlib
import shutil

import jax
import numpy as np
import pytest
import scipy.stats

from beneficial_rl import checkpoints
from beneficial_rl.data import build
from beneficial_rl.data import layout
from beneficial_rl.data import procedural
from beneficial_rl.data import scenarios as scenarios_lib
from beneficial_rl.figures import results as results_lib
from beneficial_rl.grading import reward_model as rm
from beneficial_rl.grading import train_reward_model as trm
from beneficial_rl.rl import sft

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = dict(num_layers=1, embed_dim=32, num_heads=4, num_kv_heads=2,
            head_dim=8, mlp_dim=64, max_seq_len=256)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> pathlib.Path:
  """A smoke data dir (configs/data/smoke.py)."""
  config = build.load_config(REPO_ROOT / "configs" / "data" / "smoke.py")
  config.data_dir = str(tmp_path_factory.mktemp("data"))
  return build.build(config).data_dir


def _config(workdir, data_dir, **kw):
  c = trm.default_config()
  c.workdir = str(workdir)
  c.data_dir = str(data_dir)
  c.model.overrides = TINY
  c.max_train_samples, c.max_heldout_samples = 40, 24
  c.batch_size, c.eval_batch_size = 8, 16
  c.num_steps, c.checkpoint_every, c.log_every = 4, 2, 2
  c.max_length, c.learning_rate, c.warmup_steps = 128, 3e-3, 1
  c.update(kw)
  return c


def hand_score(scenario: scenarios_lib.Scenario, response: str) -> float:
  """Rubric score by the formula: sum(met points) / sum(positive points)."""
  met = [scenarios_lib.evidence_met(c.evidence, response)
         for c in scenario.rubric]
  points = np.array([c.points for c in scenario.rubric], float)
  return float(points[met].sum() / points[points > 0].sum())


@pytest.fixture(scope="module")
def finished(data_dir, tmp_path_factory):
  """(config, summary) of one finished 4-step run."""
  config = _config(tmp_path_factory.mktemp("rm") / "run", data_dir)
  return config, trm.train(config)


def test_summary_agrees_with_agreement_file_data_and_checkpoint(
    finished, data_dir):
  config, summary = finished
  work = pathlib.Path(config.workdir)
  assert json.loads((work / trm.SUMMARY_FILE).read_text()) == summary
  ckpt = work / "checkpoints"
  assert sorted(p.name for p in ckpt.iterdir()) == ["2", "4",
                                                     "agreement-4.json"]
  agreement = rm.read_agreement(ckpt, 4)
  assert summary["agreement_file"] == "checkpoints/agreement-4.json"
  assert summary["heldout"] == {k: agreement[k] for k in (
      "spearman", "pairwise_accuracy", "n_samples", "n_pairs")}
  assert summary["samples"]["heldout"] == agreement["n_samples"]
  assert summary["pairs"]["heldout"] == agreement["n_pairs"]
  assert (summary["step"], summary["objective"], summary["judge_id"]) == (
      4, "both", "pattern")
  # Whole scenarios under the caps; every target is the pattern judge's
  # rubric score, computed here by hand.
  train, heldout = trm.load_data(config, trm.make_judge(config))
  assert len(train.samples) == summary["samples"]["train"] <= 40
  assert len(heldout.samples) == summary["samples"]["heldout"] <= 24
  for split, judged in (("train", train), ("heldout", heldout)):
    by_id = {s.id: s for s in scenarios_lib.load_scenarios(
        layout.scenarios_path(data_dir, split))}
    counts = collections.Counter(s.prompt_id for s in judged.samples)
    assert summary["scenarios"][split] == len(counts)
    for prompt_id, n in counts.items():
      assert n == len(procedural.candidates_of(by_id[prompt_id]))
    for s in judged.samples:
      assert s.score == pytest.approx(hand_score(by_id[s.prompt_id],
                                                 s.response))
  # Train pairs: responses to one prompt with different scores.
  groups = collections.defaultdict(list)
  for s in train.samples:
    groups[s.prompt_id].append(s.score)
  assert summary["pairs"]["train"] == sum(
      a != b for g in groups.values() for i, a in enumerate(g)
      for b in g[i + 1:])
  # Held-out agreement of the saved checkpoint, recomputed with scipy.
  scorer = rm.RewardModelScorer.from_checkpoint(
      ckpt, 4, asset_dir=work / "tok2", batch_size=16, max_length=128)
  pred = scorer.score([s.conversation for s in heldout.samples],
                      [s.response for s in heldout.samples])
  gold = [s.score for s in heldout.samples]
  assert summary["heldout"]["spearman"] == pytest.approx(
      scipy.stats.spearmanr(pred, gold).statistic, abs=1e-6)
  for name in ("train", "heldout"):
    rel = layout.scenarios_relpath(name)
    assert summary["data_hashes"][rel] == hashlib.sha256(
        (data_dir / rel).read_bytes()).hexdigest()
  rows = [json.loads(l) for l in (work / trm.METRICS_FILE).read_text()
          .splitlines()]
  assert [r["step"] for r in rows] == [2, 4]
  assert summary["final_loss"] == rows[-1]["loss"]
  assert summary["seconds"] > 0 and summary["resumed_from_step"] == 0
  # The report's reader accepts what the binary writes.
  results_lib.check_reward_model_summary(work / trm.SUMMARY_FILE, summary)


def test_finished_run_does_nothing(finished, monkeypatch):
  config, summary = finished
  work = pathlib.Path(config.workdir)
  before = {p: p.stat().st_mtime_ns for p in work.rglob("*")}

  def fail(*args, **kwargs):
    raise AssertionError("a finished run built a trainer")

  monkeypatch.setattr(trm, "make_trainer", fail)
  monkeypatch.setattr(trm, "load_data", fail)
  assert trm.train(config) == summary
  assert {p: p.stat().st_mtime_ns for p in work.rglob("*")} == before


def test_interrupted_run_resumes_from_its_last_checkpoint(finished,
                                                          tmp_path):
  config, summary = finished
  work = tmp_path / "run"
  shutil.copytree(config.workdir, work)
  # As if it stopped right after step 2 was saved.
  shutil.rmtree(work / "checkpoints" / "4")
  (work / "checkpoints" / "agreement-4.json").unlink()
  (work / trm.SUMMARY_FILE).unlink()
  # A run from before data_hashes.json existed: recorded on resume.
  (work / trm.DATA_HASHES_FILE).unlink()
  resumed = trm.train(_config(work, config.data_dir))
  assert resumed["resumed_from_step"] == 2
  assert json.loads((work / trm.DATA_HASHES_FILE).read_text()) == summary[
      "data_hashes"]
  for key in ("heldout", "final_loss", "samples", "pairs", "data_hashes"):
    assert resumed[key] == pytest.approx(summary[key], abs=1e-5), key
  a = checkpoints.load_params(work / "checkpoints")
  b = checkpoints.load_params(pathlib.Path(config.workdir) / "checkpoints")
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), a,
               b)


def test_resume_with_changed_data_is_refused(finished, tmp_path):
  config, summary = finished
  work, data = tmp_path / "run", tmp_path / "data"
  shutil.copytree(config.workdir, work)
  shutil.copytree(config.data_dir, data)
  shutil.rmtree(work / "checkpoints" / "4")
  (work / trm.SUMMARY_FILE).unlink()
  assert json.loads((work / trm.DATA_HASHES_FILE).read_text()) == summary[
      "data_hashes"]
  heldout = layout.scenarios_path(data, "heldout")
  heldout.write_text(heldout.read_text() + "\n")
  with pytest.raises(ValueError, match=r"data_hashes.json: config.data_dir "
                     r"file scenarios/heldout.jsonl has sha256 [0-9a-f]{64} "
                     r"but the run in .* started with [0-9a-f]{64}"):
    trm.train(_config(work, data))
  assert not (work / "checkpoints" / "4").exists()


@pytest.mark.parametrize("change, message", [
    ({"objective": "l1"}, r"config.objective='l1': expected 'mse'"),
    ({"batch_size": 7}, r"config.batch_size=7: must be even"),
    ({"num_steps": 0}, r"config.num_steps=0: must be an int >= 1"),
    ({"learning_rate": 0.0}, r"config.learning_rate=0.0: must be a finite"),
    ({"max_train_samples": -1}, r"config.max_train_samples=-1: must be"),
    ({"max_length": 512}, r"config.max_length=512: exceeds the model's "
     r"max_seq_len=256"),
    ({"judge": {"name": "oracle"}}, r"config.judge.name='oracle': expected"),
    ({"candidate_labels": ("great",)}, r"config.candidate_labels=.*unknown "
     r"labels \['great'\]"),
    ({"negative_only": "zero"}, r"config.negative_only='zero'"),
    ({"chat_template": "nope"}, r"config.chat_template='nope'"),
    ({"init_checkpoint": "/no/such/dir"}, r"config.init_checkpoint="
     r"'/no/such/dir': no such directory"),
    ({"data_dir": "/no/such/data"}, r"config.data_dir='/no/such/data': "
     r"lacks scenarios/train.jsonl"),
    ({"workdir": ""}, r"config.workdir='': must name a directory"),
])
def test_bad_config_values_name_the_field(data_dir, tmp_path, change,
                                          message):
  config = _config(tmp_path / "run", data_dir)
  config.update(change)
  with pytest.raises(ValueError, match=message):
    trm.train(config)
  assert not (tmp_path / "run").exists()  # Nothing ran.


def test_unknown_and_nested_fields(data_dir, tmp_path):
  config = _config(tmp_path, data_dir)
  config.model.preset = "huge"
  with pytest.raises(ValueError, match=r"config.model.preset='huge'"):
    trm.validate_config(config)
  config = _config(tmp_path, data_dir)
  config.model.overrides = {"depth": 2}
  with pytest.raises(ValueError, match=r"config.model: .*depth"):
    trm.validate_config(config)
  with pytest.raises(ValueError, match=r"unknown fields \['extra'\]"):
    trm.validate_config(_config(tmp_path, data_dir, extra=1))


def test_init_from_sft_checkpoint_keeps_the_backbone_bitwise(
    data_dir, tmp_path):
  prior = sft.default_config()
  prior.workdir = str(tmp_path / "sft")
  prior.model.overrides = TINY
  prior.tokenizer = str(layout.tokenizer_path(data_dir))
  prior.data.source, prior.data.path = "jsonl", str(layout.sft_path(
      data_dir))
  prior.data.num_eval = 8
  prior.max_length, prior.buckets = 128, (64, 128)
  prior.batch_size = prior.eval_batch_size = 8
  prior.num_steps = prior.checkpoint_every = prior.eval_every = 1
  prior.log_every, prior.num_devices = 1, 1
  sft.train(prior)
  sft_ckpt = tmp_path / "sft" / "checkpoints"

  config = _config(tmp_path / "rm", data_dir, init_checkpoint=str(sft_ckpt),
                   num_steps=2)
  # The checkpoint's shape wins over the (ignored) preset fields.
  config.model.preset, config.model.overrides = "tiny", {}
  train, _ = trm.load_data(config, trm.make_judge(config))
  trainer = trm.make_trainer(config, train.samples)
  saved = checkpoints.load_params(sft_ckpt)
  jax.tree.map(np.testing.assert_array_equal, trainer.state.params["decoder"],
               saved["decoder"])
  np.testing.assert_array_equal(trainer.state.params["reward_head"], 0.0)
  assert trainer.cfg.to_dict() == checkpoints.load_config(sft_ckpt)["model"]

  summary = trm.train(config)
  assert summary["init_checkpoint"] == str(sft_ckpt.absolute())
  assert summary["model"]["embed_dim"] == TINY["embed_dim"]
  rm_config = checkpoints.load_config(tmp_path / "rm" / "checkpoints")
  assert rm_config["head"] == "reward"
  assert rm_config["model"] == summary["model"]
