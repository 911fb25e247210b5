"""Train a tiny config in this process or under torchrun (tests/test_distributed.py launches it).

    python tests/dist_driver.py CONFIG_JSON OUT_DIR [--max-steps N] [--resume]
    torchrun --nproc_per_node 2 tests/dist_driver.py CONFIG_JSON OUT_DIR ...

Rewards are the completion's length mod 2 (they differ within a group, so every step has a gradient); a completion
is "correct" when its length is a multiple of 3 (groups with some right: ExGRPO's buffer fills). Rank 0 also writes
``gathered.json``: the name and shape of every tensor of the full state dict gathered from the shards.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from suite import distributed  # noqa: E402
from suite.config import TrainConfig  # noqa: E402
from suite.trainer import Trainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig(**json.loads(Path(args.config).read_text()))
    trainer = Trainer(cfg, args.out, resume=args.resume)
    trainer.reward_fn = lambda text, answers: float(len(text) % 2)
    trainer.verifier = lambda text, answers: len(text) % 3 == 0
    trainer.run(max_steps=args.max_steps)
    full = distributed.full_state_dict(trainer.policy)  # a collective when sharded: every rank calls it
    if trainer.world.is_main:
        (Path(args.out) / "gathered.json").write_text(json.dumps({k: list(v.shape) for k, v in full.items()}))
        (Path(args.out) / "world.json").write_text(json.dumps({"size": trainer.world.size,
                                                                "sharded": trainer.sharded}))
    distributed.teardown()


if __name__ == "__main__":
    main()
