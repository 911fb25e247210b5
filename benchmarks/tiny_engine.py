"""The rollout engine's generation time on tiny-llama (what the tests and the smoke profile run), for one source tree.

To compare two commits, run it on each tree one after the other on an idle machine, e.g.

    git worktree add /tmp/old b511f56
    python benchmarks/tiny_engine.py /tmp/old
    python benchmarks/tiny_engine.py .

32 prompts of 8-40 random tokens, 32 new tokens, 4 samples each (sampled) or greedy, fp32 and bf16 samplers;
the best of three calls.
"""
import sys, time, torch
sys.path.insert(0, sys.argv[1])
from suite.models import load_model, TINY
from suite.rollout import HFEngine, SamplingParams
torch.set_num_threads(2)
model, tok = load_model(TINY)
torch.manual_seed(0)
prompts = [[int(x) for x in torch.randint(5, 300, (int(n),))] for n in torch.randint(8, 40, (32,))]
for bf16 in (False, True):
    eng = HFEngine(model, tok, batch_size=64, bf16=bf16)
    for params in (SamplingParams(max_new_tokens=32, n=4), SamplingParams(max_new_tokens=32, greedy=True)):
        eng.generate(prompts[:2], params)
        best = min((lambda t0: (eng.generate(prompts, params), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(3))
        print(sys.argv[1], "bf16" if bf16 else "fp32", "greedy" if params.greedy else "n=4", f"{best:.3f} s")
