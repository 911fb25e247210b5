"""Base model's per-question success count k out of K samples (T = 1) on a training set, per difficulty level.

    python scripts/base_passk.py DATASET N_PER_LEVEL K MAX_NEW_TOKENS [TEMPLATE]

Used to pick tasks a 135M model can learn from (ExGRPO's levels, Cooper's mini task; docs/exgrpo.md, docs/cooper.md).
"""
import collections, json, sys, time
from suite.config import TrainConfig
from suite.data import prepare
from suite.trainer import Trainer

dataset, n_per, K, max_new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
template = sys.argv[5] if len(sys.argv) > 5 else "plain"
prepare(dataset, "train", "/tmp/exg/data")
cfg = TrainConfig(experiment="passk", model="smollm2-135m-instruct", train_dataset=dataset, data_dir="/tmp/exg/data",
                  prompt_template=template, max_new_tokens=max_new, temperature=1.0, group_size=K, seed=0)
t = Trainer(cfg, "/tmp/exg/run")
by_level = collections.defaultdict(list)
for rec in t.records:
    lv = rec["metadata"].get("level", 0)
    if len(by_level[lv]) < n_per:
        by_level[lv].append(rec)
recs = [r for lv in sorted(by_level) for r in by_level[lv]]
t0 = time.time()
comps = t.generate([t.prompt_ids(r) for r in recs], K)
texts = t.decode(comps)
out = {}
for i, r in enumerate(recs):
    k = sum(t.verifier(x, r["answers"]) for x in texts[i * K:(i + 1) * K])
    out.setdefault(r["metadata"].get("level", 0), []).append(k)
for lv, ks in out.items():
    hist = collections.Counter(ks)
    print(json.dumps({"level": lv, "questions": len(ks), "mean_acc": sum(ks) / (K * len(ks)),
                      "pass_at_K": sum(k > 0 for k in ks) / len(ks), "mixed_0<k<K": sum(0 < k < K for k in ks) / len(ks),
                      "k_hist": dict(sorted(hist.items()))}))
allk = [k for ks in out.values() for k in ks]
print(json.dumps({"all": True, "questions": len(allk), "mean_acc": sum(allk) / (K * len(allk)),
                  "pass_at_K": sum(k > 0 for k in allk) / len(allk), "mixed_0<k<K": sum(0 < k < K for k in allk) / len(allk),
                  "mean_len": sum(map(len, comps)) / len(comps), "truncated": sum(len(c) >= max_new for c in comps) / len(comps),
                  "gen_s": time.time() - t0}))
