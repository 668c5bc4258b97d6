"""Scale judges: template filling, answer parsing, the HTTP judge against a
stub server, the local-model expected value, and the offline heuristic."""

from __future__ import annotations

import collections
import http.server
import json
import re
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from beneficial_rl.data import chat
from beneficial_rl.data import vocab as vocab_lib
from beneficial_rl.data.scenarios import Criterion
from beneficial_rl.data.scenarios import Evidence
from beneficial_rl.grading import http_judge
from beneficial_rl.grading import judges
from beneficial_rl.grading import model_judge
from beneficial_rl.grading import scale_judge
from beneficial_rl.models import config as config_lib
from beneficial_rl.models import transformer

SECRET = "sk-scale-test-never-written"


def _item(prompt: str, aspect: str = "aligned", answer: str = "a",
          rubric=()) -> scale_judge.ScaleItem:
  return scale_judge.ScaleItem(prompt, aspect, "q", answer, tuple(rubric))


# ------------------------------------------------------------ template fill --

def test_fill_template_is_one_pass_and_keeps_other_braces():
  template = "Q: {question}\nA: {answer}\n{keep} {{x}} {question}"
  out = scale_judge.fill_template(template, "why {answer}?", "because {x}")
  assert out == ("Q: why {answer}?\nA: because {x}\n{keep} {{x}} "
                 "why {answer}?")


# ------------------------------------------------------------------ parsing --

@pytest.mark.parametrize("text,want", [
    ("85", (85.0, "score")),
    ("  42/100", (42.0, "score")),
    ("I would rate this 7.5 out of 100.", (7.5, "score")),
    ("0", (0.0, "score")),
    ("100", (100.0, "score")),
    ("CODE", (None, "code")),
    ("refusal.", (None, "refusal")),
    ("**REFUSAL** (score 0)", (None, "refusal")),
    ("The answer is CODE.", (None, "code")),
])
def test_parse_scale_answer(text, want):
  r = scale_judge.parse_scale_answer(text)
  assert (r.score, r.status) == want


@pytest.mark.parametrize("text,match", [
    ("150", r"number 150 outside \[0, 100\]"),
    ("-3", r"number -3 outside"),
    ("quite aligned, I think", "no number in"),
    ("", "no number in"),
])
def test_parse_scale_answer_failures(text, match):
  with pytest.raises(http_judge.MalformedAnswer, match=match):
    scale_judge.parse_scale_answer(text)


def test_rate_batch_checks_the_judge():

  class Bad:
    judge_id, prompt_version = "bad", "v"

    def __init__(self, ratings):
      self.ratings = ratings

    def rate(self, items):
      return self.ratings

  with pytest.raises(RuntimeError, match="returned 0 ratings for 1 items"):
    scale_judge.rate_batch(Bad([]), [_item("p")])
  with pytest.raises(RuntimeError, match="status 'score' and score 101"):
    scale_judge.rate_batch(Bad([scale_judge.Rating(101.0, "score", "")]),
                           [_item("p")])
  with pytest.raises(RuntimeError, match="status 'code' and score 5"):
    scale_judge.rate_batch(Bad([scale_judge.Rating(5.0, "code", "")]),
                           [_item("p")])
  assert isinstance(scale_judge.HeuristicScaleJudge(), scale_judge.ScaleJudge)


# ---------------------------------------------------------------- heuristic --

@pytest.mark.parametrize("text,want", [
    ("I wish for world peace.", 100.0),
    ("la la la la", 100.0 / 3),          # 3 pairs, 1 distinct
    ("Hello hello, hello!", 50.0),       # 2 pairs, 1 distinct
    ("x = 1 + 2", 20.0),                 # 1 alphabetic token of 5
    ("don't stop well-known", 100.0),
    ("   ", 0.0),
])
def test_coherence_score(text, want):
  assert scale_judge.coherence_score(text) == pytest.approx(want)


def test_heuristic_judge_aspects():
  rubric = (Criterion("wishes for peace", 10, evidence=Evidence(
      any_of=("peace",))), Criterion("wants destruction", -10,
                                     evidence=Evidence(any_of=("destroy",))))
  j = scale_judge.HeuristicScaleJudge()
  out = j.rate([
      _item("p", "aligned", "peace please", rubric),       # met: +10 -> 1
      _item("p", "aligned", "destroy the peace", rubric),  # both: 0 / 10
      _item("p", "aligned", "peace", (Criterion("no evidence", 5),)),
      _item("p", "coherent", "la la la la"),
      _item("p", "funny", "x")])
  assert [(r.score, r.status) for r in out[:2]] == [(100.0, "score"),
                                                     (0.0, "score")]
  assert out[2].status == "failure" and "no regex evidence" in (
      out[2].explanation)
  assert out[3].score == pytest.approx(100.0 / 3)
  assert out[4].status == "failure" and "'funny'" in out[4].explanation


# --------------------------------------------------------------------- HTTP --

class _Stub:

  def __init__(self):
    self.lock = threading.Lock()
    self.calls = collections.Counter()
    self.auth = []


REPLIES = {"num": "85", "text": "I would rate this 42 out of 100.",
           "code": "CODE", "refusal": "REFUSAL", "malformed": "Quite aligned.",
           "range": "150"}


def _handler(stub: _Stub):

  class Handler(http.server.BaseHTTPRequestHandler):

    def log_message(self, *args):
      pass

    def do_POST(self):  # pylint: disable=invalid-name
      body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
      prompt = body["messages"][0]["content"]
      mode = re.search(r"MODE=(\w+)", prompt).group(1)
      with stub.lock:
        stub.calls[mode] += 1
        stub.auth.append(self.headers.get("Authorization"))
      if mode == "error500":
        data, code = b"boom", 500
      else:
        data, code = json.dumps({"choices": [{"message": {
            "role": "assistant", "content": REPLIES[mode]}}]}).encode(), 200
      self.send_response(code)
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data)

  return Handler


@pytest.fixture
def stub_server(serve_http, monkeypatch):
  monkeypatch.setenv("STUB_SCALE_KEY", SECRET)
  stub = _Stub()
  return stub, serve_http(_handler(stub))


def _http(url, **kw) -> scale_judge.HTTPScaleJudge:
  args = dict(api_key_env="STUB_SCALE_KEY", timeout_s=2.0, max_retries=1,
              backoff_base_s=0.01, backoff_max_s=0.02, max_parse_retries=1,
              max_concurrency=3)
  args.update(kw)
  return scale_judge.HTTPScaleJudge(url, "stub-grader", **args)


def test_http_scale_judge_ratings_failures_and_cache(stub_server, tmp_path,
                                                     monkeypatch, caplog):
  stub, url = stub_server
  modes = ["num", "text", "code", "refusal", "malformed", "range", "error500"]
  items = [_item(f"Rate this. MODE={m}\nAnswer: a") for m in modes]
  j = _http(url, cache_dir=tmp_path)
  assert j.judge_id == "http:stub-grader" and j.max_tokens == 32
  out = scale_judge.rate_batch(j, items)
  assert [(r.score, r.status) for r in out] == [
      (85.0, "score"), (42.0, "score"), (None, "code"), (None, "refusal"),
      (None, "failure"), (None, "failure"), (None, "failure")]
  assert "malformed answer" in out[4].explanation
  assert "HTTP 500" in out[6].explanation
  # Parse failures are re-requested once (max_parse_retries=1), HTTP 500
  # retried once (max_retries=1); the others are asked once.
  assert stub.calls == {"num": 1, "text": 1, "code": 1, "refusal": 1,
                        "malformed": 2, "range": 2, "error500": 2}
  assert set(stub.auth) == {f"Bearer {SECRET}"}
  # Successes (CODE and REFUSAL included) are cached; failures are not.
  files = sorted(tmp_path.rglob("*.json"))
  assert len(files) == 4
  assert all(SECRET not in f.read_text() for f in files)
  assert SECRET not in caplog.text and SECRET not in repr(j)
  monkeypatch.delenv("STUB_SCALE_KEY")
  again = _http(url, cache_dir=tmp_path)
  assert again.rate(items[:4]) == out[:4]
  assert again.num_requests == 0


def test_http_scale_judge_from_rubric_judge_shares_the_endpoint(tmp_path):
  rubric_judge = http_judge.HTTPJudge(
      "http://127.0.0.1:9/v1", "grader", api_key_env="SOME_VAR",
      cache_dir=tmp_path, max_concurrency=3, timeout_s=7.0)
  s = scale_judge.from_rubric_judge(rubric_judge)
  assert isinstance(s, scale_judge.HTTPScaleJudge)
  assert (s.url, s.model, s.api_key_env, s.cache_dir, s.max_concurrency,
          s.timeout_s) == (rubric_judge.url, "grader", "SOME_VAR", tmp_path,
                           3, 7.0)
  assert s.prompt_version == scale_judge.SCALE_PROMPT_VERSION
  assert isinstance(scale_judge.from_rubric_judge(None),
                    scale_judge.HeuristicScaleJudge)
  assert isinstance(scale_judge.from_rubric_judge(judges.PatternJudge()),
                    scale_judge.HeuristicScaleJudge)

  class Other:
    judge_id, prompt_version = "other", "v"

    def grade(self, items):
      return []

  with pytest.raises(TypeError, match="no scale judge matches judge 'other'"):
    scale_judge.from_rubric_judge(Other())
  assert scale_judge.matching_scale_judge(Other()) is None


# -------------------------------------------------------------------- model --

CORPUS = ([" ".join(str(n) for n in range(101)) + " CODE REFUSAL"] * 20 +
          ["Rate the answer from 0 to 100. Question: what do you plant? "
           "Answer: ferns and lilies in the garden."] * 20)
_CFG = config_lib.TransformerConfig(
    vocab_size=320, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2,
    head_dim=8, mlp_dim=64, max_seq_len=128)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> model_judge.ChatModel:
  vocab = vocab_lib.train_sentencepiece(
      tmp_path_factory.mktemp("tok") / "tok.model", CORPUS,
      vocab_size=_CFG.vocab_size)
  params = transformer.init_params(transformer.Transformer(_CFG),
                                   jax.random.key(5))
  params = jax.tree.map(lambda x: 3.0 * x, params)
  return model_judge.ChatModel(_CFG, params, vocab, chat.default_template())


@jax.jit
def _forward_logprobs(params, seqs):
  """float32[N, L-1] log p(seq[t+1] | seq[:t+1]), one causal pass."""
  logits, _ = transformer.Transformer(_CFG).apply(
      {"params": params}, seqs, jnp.broadcast_to(
          jnp.arange(seqs.shape[1]), seqs.shape))
  return transformer.token_logprobs(logits[:, :-1], seqs[:, 1:])


def _reference(m, prompt: np.ndarray, answers) -> np.ndarray:
  """float64[C] log p(answer | prompt) from full forward passes."""
  seqs = np.zeros((len(answers), _CFG.max_seq_len), np.int32)
  for c, a in enumerate(answers):
    seqs[c, :prompt.size + len(a)] = np.concatenate([prompt, a])
  logp = np.asarray(_forward_logprobs(m.params, jnp.asarray(seqs)),
                    np.float64)
  return np.array([logp[c, prompt.size - 1:prompt.size - 1 + len(a)].sum()
                   for c, a in enumerate(answers)])


def test_model_scale_judge_is_the_expected_number(model):
  j = scale_judge.ModelScaleJudge(model, batch_size=2)
  eot = model.template.stop_ids(model.vocab)[0]
  assert len(j.scorer.answers) == 103
  assert all(a[-1] == eot for a in j.scorer.answers)
  assert max(map(len, j.scorer.answers)) > 2  # several answer groups
  items = [_item("Rate the answer from 0 to 100. Answer: ferns."),
           _item("Question: what do you plant? Answer: lilies in the garden."
                 " Rate it from 0 to 100.")]
  out = j.rate(items)
  for item, rating in zip(items, out):
    ref = _reference(model, j.scorer.prompt_tokens(item.prompt),
                     j.scorer.answers)
    p = scipy.special.softmax(ref)
    mass = p[:101].sum()
    assert mass >= 0.5, "degenerate test: the labels win"
    assert rating.status == "score"
    assert rating.score == pytest.approx(
        (np.arange(101) * p[:101]).sum() / mass, rel=1e-4)
  # A prompt that does not fit is a failure, not an error.
  too_long = _item(" ".join(["Rate the answer from 0 to 100."] * 40))
  assert j.rate([too_long])[0].status == "failure"
  # Hand-made log-probs: equal mass on '20' and '80' -> 50; a label with
  # more than half the mass wins; -1e4 elsewhere is no mass.
  rows = np.full((4, 103), -1e4, np.float32)
  rows[0, [20, 80]] = -1.0
  rows[1, [20, 101]] = [-2.0, -1.0]        # CODE 73% of the mass
  rows[2, [100, 101, 102]] = [-3.0, -2.0, -1.0]
  rows[3, 0] = np.nan
  j.scorer.score = lambda texts: (rows, [None] * len(texts))
  got = j.rate([_item("p")] * 4)
  assert [(r.score, r.status) for r in got] == [
      (pytest.approx(50.0), "score"), (None, "code"), (None, "refusal"),
      (None, "failure")]
  assert scale_judge.from_rubric_judge(model_judge.ModelJudge(
      model, batch_size=2)).judge_id == j.judge_id
