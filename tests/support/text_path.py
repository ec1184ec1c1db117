"""The real-data path on the arith testbed: problems written as GSM8K-style JSONL and a tiny policy trained to answer
them in the text path's format (`ArithAsText`), so that some answers are right and MC values are not all 0."""

from prm_core.domains.arith import ArithConfig

PROBLEMS = ArithConfig(min_steps=1, max_steps=1, max_num=5)  # one operation on small numbers: 300 steps reach ~35 %
POLICY_STEPS = 300
