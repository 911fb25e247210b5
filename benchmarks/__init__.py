"""Comparisons against the obvious alternative (TRL's GRPOTrainer): shared setup and the reward-curve run.

Speed is measured by ``tests/bench/test_trainer_speed.py`` (pytest-benchmark); learning by
``python -m benchmarks.reward_curves``. Both use :mod:`benchmarks.trl_grpo` so the two trainers see the
same model, data, prompt, reward and hyperparameters.
"""
