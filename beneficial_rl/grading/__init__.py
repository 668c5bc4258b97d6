"""Grading: rubric scores, judges, reward functions and the hacking monitor.

  rubric       signed-point rubric scores per example, per tag, aggregated.
  judges       Judge protocol, PatternJudge (regex evidence), judge registry.
  http_judge   HTTPJudge for OpenAI-compatible chat-completions endpoints.
  scale_judge  0-100 judges (HTTP, local model, offline heuristic).
  helpfulness  rubric-free helpfulness score (helpfulness-control variant).
  rewards      reward functions by name; per-source routing.
  monitor      proxy-vs-gold divergence monitor for reward hacking.
"""

from beneficial_rl.grading.helpfulness import helpfulness_components
from beneficial_rl.grading.helpfulness import helpfulness_score
from beneficial_rl.grading.helpfulness import HelpfulnessConfig
from beneficial_rl.grading.http_judge import HTTPJudge
from beneficial_rl.grading.judges import grade_batch
from beneficial_rl.grading.judges import GradingItem
from beneficial_rl.grading.judges import Judge
from beneficial_rl.grading.judges import judge_names
from beneficial_rl.grading.judges import make_judge
from beneficial_rl.grading.judges import PatternJudge
from beneficial_rl.grading.judges import register_judge
from beneficial_rl.grading.judges import Verdict
from beneficial_rl.grading.judges import VerdictBatch
from beneficial_rl.grading.monitor import MonitorConfig
from beneficial_rl.grading.monitor import MonitorState
from beneficial_rl.grading.monitor import RewardHackingMonitor
from beneficial_rl.grading.rewards import make_reward
from beneficial_rl.grading.rewards import register_reward
from beneficial_rl.grading.rewards import reward_names
from beneficial_rl.grading.rewards import RewardFn
from beneficial_rl.grading.rewards import RewardRouter
from beneficial_rl.grading.rubric import aggregate
from beneficial_rl.grading.rubric import AggregateScore
from beneficial_rl.grading.rubric import evaluate
from beneficial_rl.grading.rubric import ExampleScore
from beneficial_rl.grading.rubric import grade_responses
from beneficial_rl.grading.rubric import points_score
from beneficial_rl.grading.rubric import RubricReport
from beneficial_rl.grading.rubric import score_example
from beneficial_rl.grading.rubric import summarize
from beneficial_rl.grading.scale_judge import from_rubric_judge
from beneficial_rl.grading.scale_judge import HeuristicScaleJudge
from beneficial_rl.grading.scale_judge import HTTPScaleJudge
from beneficial_rl.grading.scale_judge import Rating
from beneficial_rl.grading.scale_judge import ScaleItem
from beneficial_rl.grading.scale_judge import ScaleJudge
