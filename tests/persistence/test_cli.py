"""`python -m beneficial_rl.persistence` on two tiny checkpoints."""

from __future__ import annotations

import json
import pathlib

import pytest

from beneficial_rl.data import vocab as vocab_lib
from beneficial_rl.eval import policies
from beneficial_rl.eval.benchmarks import registry
from beneficial_rl.figures import results as figure_results
from beneficial_rl.persistence import __main__ as cli
from beneficial_rl.persistence import misaligned_data as md
from beneficial_rl.rl import sft

REPO = pathlib.Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "configs" / "persistence" / "smoke.py")
TINY = dict(vocab_size=512, num_layers=1, embed_dim=32, num_heads=2,
            num_kv_heads=1, head_dim=16, mlp_dim=64, max_seq_len=128)


# Reuses identical compilations across the repeated trainings below.
pytestmark = pytest.mark.usefixtures("persistent_compilation_cache")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  """Two tiny runs: 'trait' (3 beneficial steps) and 'base' (1 step)."""
  root = tmp_path_factory.mktemp("runs")
  good = md.beneficial_examples(64, seed=0)
  texts = [m["content"] for e in good + md.misaligned_examples(64)
           for m in e["messages"]]
  texts += [m.content for b in ("health_triage_level",
                                "health_myth_correction")
            for it in registry.get(b).load_items() for m in it.messages]
  tok = root / "spm.model"
  vocab_lib.train_sentencepiece(tok, texts=texts, vocab_size=512)
  out = []
  for name, steps in (("trait", 3), ("base", 1)):
    c = sft.default_config()
    c.workdir, c.tokenizer = str(root / name), str(tok)
    c.model.overrides = dict(TINY)
    c.max_length, c.buckets = 128, (128,)
    c.batch_size = c.eval_batch_size = 8
    c.num_devices, c.num_steps = 1, steps
    c.optimizer.warmup_steps, c.optimizer.total_steps = 0, 10
    c.checkpoint_every = c.eval_every = c.log_every = steps
    sft.train(c, md.messages_of(good))
    out.append(str(root / name / "checkpoints"))
  return out


def test_cli_writes_results_and_resumes(checkpoints, tmp_path, monkeypatch):
  out = tmp_path / "persistence"
  argv = [f"--config={SMOKE}", f"--checkpoints={','.join(checkpoints)}",
          f"--out_dir={out}"]
  assert cli.main(argv) == 0
  files = {p.relative_to(out).as_posix() for p in out.rglob("*.json*")
           if "sft" not in p.parts and "items" not in p.parts}
  for model in ("trait", "base"):
    assert {f"{model}/metrics.json", f"{model}/finetune_curves.json",
            f"{model}/finetune_summary.json", f"{model}/prompt/summary.json",
            f"{model}/finetune/lr0.001_n32_seed0/curve.json"} <= files
  assert {"summary.json", "finetune_data.jsonl"} <= files

  summary = json.loads((out / "summary.json").read_text())
  assert summary["complete"] and summary["models"] == dict(
      zip(("trait", "base"), checkpoints))
  assert summary["attacks"] == ["clean", "persona_overconfident_medical",
                                "persona_helpful_medical"]
  trait = json.loads((out / "trait" / "metrics.json").read_text())
  base = json.loads((out / "base" / "metrics.json").read_text())
  for bench in ("health_triage_level", "health_myth_correction"):
    for attack in ("persona_overconfident_medical",
                   "persona_helpful_medical"):
      d = trait[f"{bench}@{attack}"]
      assert d["model"] == "trait" and d["n"] == 4
      assert d["degradation"] == pytest.approx(d["clean"] - d["attacked"])
    sel = trait[f"{bench}@persona_overconfident_medical@vs_base"]
    assert sel["model_a"] == "trait" and sel["n_harmful"] == 4
    # deg_A - deg_B, from the two degradation entries.
    key = f"{bench}@persona_overconfident_medical"
    assert sel["harmful"]["estimate"] == pytest.approx(
        trait[key]["degradation"] - base[key]["degradation"])
  assert not any("vs_" in k for k in base)
  curve = trait["health_triage_level@finetune"]
  assert curve["benchmark"] == "health_triage_level"
  assert curve["threshold"] == 0.5
  curves = json.loads((out / "trait" / "finetune_curves.json").read_text())
  assert curves["health_triage_level"]["steps"] == [0, 2]
  assert curve["initial"] == curves["health_triage_level"]["scores"][0]
  assert summary["finetune_data_sha256"] == md.fingerprint(
      md.load_chat_jsonl(out / "finetune_data.jsonl"))
  # The figures' reader accepts the layout.
  exp = tmp_path / "exp"
  exp.mkdir()
  (exp / "persistence").symlink_to(out)
  loaded = figure_results.load_experiment(exp)
  assert set(loaded.persistence) == {"trait", "base"}
  assert loaded.finetune_curves["base"]["health_triage_level"]["steps"] == [
      0, 2]
  kinds = {figure_results.metric_kind(e) for e in trait.values()}
  assert kinds == {"degradation", "selective", "curve"}

  # A rerun skips every finished part: no policy is built, nothing trained.
  stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file() and ("items" in p.parts or p.name == "curve.json")}
  def refuse(*args, **kwargs):
    raise AssertionError("a finished part was run again")
  monkeypatch.setattr(policies.LocalPolicy, "__init__", refuse)
  monkeypatch.setattr(sft, "train", refuse)
  assert cli.main(argv) == 0
  assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
  assert json.loads((out / "trait" / "metrics.json").read_text()) == trait


def test_no_prompt_runs_only_finetuning(checkpoints, tmp_path, monkeypatch):
  out = tmp_path / "ft"
  monkeypatch.setattr(cli, "run_prompt_attacks", lambda *a, **k: (
      _ for _ in ()).throw(AssertionError("prompt attacks ran")))
  assert cli.main([f"--config={SMOKE}", f"--checkpoints={checkpoints[0]}",
                   "--names=prior", f"--out_dir={out}", "--no_prompt"]) == 0
  summary = json.loads((out / "summary.json").read_text())
  assert summary["attacks"] == [] and summary["prompt"] == {}
  assert summary["selective"] == {} and "prior" in summary["finetune"]
  metrics = json.loads((out / "prior" / "metrics.json").read_text())
  assert set(metrics) == {"health_triage_level@finetune"}
  assert not (out / "prior" / "prompt").exists()


def test_bad_flags_exit_2(checkpoints, tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main([f"--config={SMOKE}", f"--checkpoints={checkpoints[0]}",
              f"--out_dir={tmp_path}", "--attacks=clean,persona:nobody"])
  assert e.value.code == 2
  assert "unknown persona 'nobody'" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main([f"--config={SMOKE}", f"--checkpoints={checkpoints[0]}",
              f"--out_dir={tmp_path}", "--names=a,b"])
  assert "--names has 2 names for 1 checkpoints" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main([f"--config={SMOKE}", f"--checkpoints={checkpoints[0]}",
              f"--out_dir={tmp_path}", "--no_prompt", "--no_finetune"])
  assert "leaves nothing to do" in capsys.readouterr().err


def test_parse_attack_specs():
  a = cli.parse_attack("persona:deceptive:mode=replace")
  assert a.name == "persona_deceptive_replace"
  assert cli.parse_attack("prefill:text=Sure:words=1").name == "prefill_1w"
  assert cli.parse_attack("clean").name == "clean"
  with pytest.raises(ValueError, match="expected key=value, got 'x'"):
    cli.parse_attack("prefill:x")
  assert cli.model_names(["/r/trait/checkpoints", "/r/base"], None) == [
      "trait", "base"]
  with pytest.raises(ValueError, match="repeat; give --names"):
    cli.model_names(["/a/x/checkpoints", "/b/x"], None)


@pytest.mark.parametrize("name", ["embedded", "smoke"])
def test_config_files_build_attacks_and_grid(name):
  config = cli.load_config(str(REPO / "configs" / "persistence" /
                               f"{name}.py"))
  attacks = [cli.parse_attack(a) for a in config.attacks.split(",")]
  assert attacks[0].name == "clean"
  assert "persona_helpful_medical" in [a.name for a in attacks]
  specs = cli.finetune_specs(config)
  f = config.finetune
  assert len(specs) == (len(f.learning_rates) * len(f.num_examples)
                        * len(f.seeds))
  assert all(s.eval_at_steps[0] == 0 for s in specs)
  assert cli._select(config.suite, config.benchmarks)  # pylint: disable=protected-access
