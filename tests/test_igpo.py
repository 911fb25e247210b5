"""IGPO (issue 3): scorer, turn rewards and advantages, probes, stop strings, the agent loop, the
lm-eval search agent, the data registry entries and resume."""

import math
from pathlib import Path
import re
from types import SimpleNamespace

import pytest
import torch

from suite.agents.search_agent import STOP, Episode, SearchAgentLM, run_episodes
from suite.algos.igpo import (IGPO, ProbeRow, discounted_turn_advantages, episode_turn_rewards, information_gains,
                              normalise_group, probe_logprobs_packed, probe_logprobs_per_turn, probe_tokens, token_advantages)
from suite.config import ConfigError, TrainConfig, parse_profile
from suite.data import load_records, prepare
from suite.envs.search import SearchEnv
from suite.losses import aggregate
from suite.models import load_model
from suite.rewards.igpo import MALFORMED, extract_answer, igpo_em, igpo_f1, normalize, set_f1
from suite.rollout import HFEngine, Rollouts, SamplingParams, collate, cut_at_stop
from suite.trainer import Trainer
from tests.helpers import assert_weights_moved

FIXTURE_MIRROR = Path(__file__).resolve().parent / "fixtures" / "mirror"

# --------------------------------------------------------------------------- the IGPO scorer


def test_scorer_normalisation_keeps_articles_and_turns_punctuation_into_spaces():
    assert normalize("The  U.S.-born Beatles!") == "the u s born beatles"
    # articles are not dropped (unlike SQuAD): {the, beatles} vs {beatles}: P = 1/2, R = 1, F1 = 2/3
    assert igpo_f1("<answer>The Beatles</answer>", ["Beatles"]) == pytest.approx(2 / 3)
    # punctuation becomes a space, so "U.S." matches "u s"
    assert igpo_f1("<answer>U.S.</answer>", ["u s"]) == 1.0
    # token *sets*: a repeated word counts once; {new, york} vs {new, york, city}: P = 1, R = 2/3, F1 = 0.8
    assert igpo_f1("<answer>New New York</answer>", ["New York City"]) == pytest.approx(0.8)
    assert set_f1("a b", "b c") == pytest.approx(0.5)  # P = R = 1/2


def test_scorer_aliases_empty_answers_and_exact_match():
    assert igpo_f1("<answer>Austen</answer>", ["Jane Austen", "Austen"]) == 1.0  # max over aliases
    assert igpo_f1("<answer>Jane</answer>", ["Jane Austen", "Austen"]) == pytest.approx(2 / 3)
    assert igpo_f1("<answer> </answer>", ["Paris"]) == 0.0  # empty prediction
    assert igpo_f1("<answer>Paris</answer>", [""]) == 0.0  # empty alias is skipped
    assert igpo_f1("<answer>Paris</answer>", []) == 0.0
    assert igpo_em("<answer>paris.</answer>", ["Paris"]) == 1.0
    assert igpo_em("<answer>the Paris</answer>", ["Paris"]) == 0.0  # no article removal


def test_malformed_scores_minus_two_in_training_and_zero_in_evaluation():
    for text in ["Paris", "<answer>Paris", "<think>x<answer>Paris</answer>", "</think><answer>Paris</answer>",
                 "<search>q<answer>Paris</answer>"]:
        assert igpo_f1(text, ["Paris"], train=True) == MALFORMED, text
        assert igpo_f1(text, ["Paris"], train=False) == 0.0, text
        assert igpo_em(text, ["Paris"]) == 0.0
    # the first complete answer counts; the environment's <information> blocks are not the agent's text
    transcript = ("<think>a</think><search>q</search>\n<information>Doc 1 (Title: X) <think> <answer>Rome"
                  "</information>\n<answer>Paris</answer><answer>Rome</answer>")
    assert extract_answer(transcript) == "Paris"
    assert igpo_f1(transcript, ["Paris"]) == 1.0


# --------------------------------------------------------------------------- turn rewards and advantages

# A group of two hand-made episodes (G = 2).
#   A: three turns (search, search, answer); gold probabilities p = 0.2, 0.5, 0.4 at turns 0, 1, 2; F1 = 1
#   B: two turns (search, answer);          p = 0.2, 0.3;                                          F1 = 0
# IG_A = [0.5 - 0.2, 0.4 - 0.5] = [0.3, -0.1]; IG_B = [0.1]; the last turn's reward is F1.
PROBES = {"A": [math.log(0.2), math.log(0.5), math.log(0.4)], "B": [math.log(0.2), math.log(0.3)]}
F1 = {"A": 1.0, "B": 0.0}


def group_rewards():
    ig_a, ig_b = information_gains(PROBES["A"]), information_gains(PROBES["B"])
    assert ig_a == pytest.approx([0.3, -0.1]) and ig_b == pytest.approx([0.1])
    return [ig_a + [F1["A"]], ig_b + [F1["B"]]]


def test_separate_normalisation_and_discounted_turn_advantages():
    # IG pool [0.3, -0.1, 0.1]: mean 0.1, population var (0.04 + 0.04 + 0) / 3 = 0.026667, std 0.163299
    #   z = [0.2, -0.2, 0] / 0.163299 = [1.224745, -1.224745, 0]
    # F1 pool [1, 0]: mean 0.5, std 0.5 -> z = [1, -1]
    norm = normalise_group(group_rewards(), "separate")
    assert norm[0] == pytest.approx([1.224745, -1.224745, 1.0], abs=1e-4)
    assert norm[1] == pytest.approx([0.0, -1.0], abs=1e-4)
    # gamma = 1: A_3 = 1, A_2 = -1.224745 + 1 = -0.224745, A_1 = 1.224745 - 0.224745 = 1.0
    assert discounted_turn_advantages(norm[0], 1.0) == pytest.approx([1.0, -0.224745, 1.0], abs=1e-4)
    assert discounted_turn_advantages(norm[1], 1.0) == pytest.approx([-1.0, -1.0], abs=1e-4)
    # gamma = 0.5: A_3 = 1, A_2 = -1.224745 + 0.5 = -0.724745, A_1 = 1.224745 - 0.362372 = 0.862372
    assert discounted_turn_advantages(norm[0], 0.5) == pytest.approx([0.862372, -0.724745, 1.0], abs=1e-4)


def test_joint_normalisation():
    # one pool [0.3, -0.1, 1, 0.1, 0]: mean 0.26; deviations 0.04, -0.36, 0.74, -0.16, -0.26;
    # population var (0.0016 + 0.1296 + 0.5476 + 0.0256 + 0.0676) / 5 = 0.1544, std 0.392938
    norm = normalise_group(group_rewards(), "joint")
    assert norm[0] == pytest.approx([0.101797, -0.916175, 1.883248], abs=1e-4)
    assert norm[1] == pytest.approx([-0.407189, -0.661682], abs=1e-4)
    # gamma = 1: A = [0.101797 - 0.916175 + 1.883248, -0.916175 + 1.883248, 1.883248]
    assert discounted_turn_advantages(norm[0], 1.0) == pytest.approx([1.068870, 0.967073, 1.883248], abs=1e-4)
    assert discounted_turn_advantages(norm[1], 1.0) == pytest.approx([-1.068871, -0.661682], abs=1e-4)


def test_unscaled_log_prob_diff_and_ablation_pools():
    # log_prob_diff: IG_A = [ln 0.5 - ln 0.2, ln 0.4 - ln 0.5] = [0.916291, -0.223144]
    assert information_gains(PROBES["A"], "log_prob_diff") == pytest.approx([0.916291, -0.223144], abs=1e-6)
    # scale_rewards = False: rewards minus the pool mean only (IG mean 0.1, F1 mean 0.5)
    assert normalise_group(group_rewards(), "separate", scale=False)[0] == pytest.approx([0.2, -0.2, 0.5])
    # ig_only drops F1 (None): it stays out of the pools and normalises to 0
    ig_only = normalise_group([[0.3, -0.1, None], [0.1, None]], "separate")
    assert ig_only[0] == pytest.approx([1.224745, -1.224745, 0.0], abs=1e-4) and ig_only[1][1] == 0.0
    # f1_only drops IG: only the F1 pool is normalised; with gamma = 1 every turn gets the z-scored F1
    f1_only = normalise_group([[None, None, 1.0], [None, 0.0]], "joint")
    assert discounted_turn_advantages(f1_only[0], 1.0) == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)
    assert normalise_group([[2.0]], "separate") == [[0.0]]  # a pool of one: std := 1


def test_joint_is_the_default_and_unprobed_episodes_add_no_ig_to_the_pool():
    # A as above (probed: IG 0.3, -0.1; F1 1); C has two turns but no gold answer text, so it is not probed:
    # its one non-final turn has no IG reward (None), only its F1 = 0 enters the pool.
    # Joint pool [0.3, -0.1, 1, 0]: mean 0.3; deviations 0, -0.4, 0.7, -0.3; population var 0.74 / 4 = 0.185,
    # std sqrt(0.185 + 1e-8) + 1e-6 = 0.430118 -> A: [0, -0.929979, 1.627463], C: [0 (no reward), -0.697484].
    # (With an IG of 0 for C's first turn the pool would be [0.3, -0.1, 1, 0, 0], mean 0.24: other numbers.)
    a = episode_turn_rewards(3, PROBES["A"], F1["A"])
    c = episode_turn_rewards(2, None, 0.0)
    assert a == pytest.approx([0.3, -0.1, 1.0]) and c == [None, 0.0]
    norm = normalise_group([a, c])  # default mode: joint
    assert norm[0] == pytest.approx([0.0, -0.929979, 1.627463], abs=1e-5)
    assert norm[1] == pytest.approx([0.0, -0.697484], abs=1e-5)
    assert IGPO.Options().norm == "joint"
    # reward modes: f1_only drops every IG, ig_only the F1; a probe list of the wrong length counts as not probed
    assert episode_turn_rewards(3, PROBES["A"], 1.0, "f1_only") == [None, None, 1.0]
    assert episode_turn_rewards(3, PROBES["A"], 1.0, "ig_only") == pytest.approx([0.3, -0.1, None])
    assert episode_turn_rewards(3, PROBES["B"], 1.0) == [None, None, 1.0]


def test_every_profile_normalises_igpo_jointly():
    from suite.config import load_profile

    for name in ("mini", "paper"):
        for exp in load_profile(f"config/{name}.yaml").of_paper("igpo"):
            if exp.train is not None:
                assert IGPO.Options(**exp.train.algo).norm == "joint", (name, exp.name)
                assert exp.train.loss_agg == "seq-mean-token-mean", (name, exp.name)


def test_turn_advantages_go_to_their_turn_tokens_only():
    # ids: [turn 1: 3 tokens][observation: 2][turn 2: 2 tokens][observation: 1][turn 3: 2 tokens]
    turns = [(0, 3), (5, 7), (8, 10)]
    assert token_advantages(turns, [1.0, -0.5, 2.0], 10) == [1, 1, 1, 0, 0, -0.5, -0.5, 0, 2, 2]


def test_options_are_validated_naming_the_option():
    with pytest.raises(ValueError, match="igpo option norm = 'zscore'"):
        IGPO.Options(norm="zscore")
    with pytest.raises(ValueError, match="igpo option gamma"):
        IGPO.Options(gamma=1.5)
    with pytest.raises(ValueError, match="reward_mode"):
        IGPO.Options(reward_mode="ig")


# --------------------------------------------------------------------------- probes


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


def test_probe_tokens_mark_the_gold_answer(tiny):
    _, tok = tiny
    ids, g0, g1 = probe_tokens(tok, "Jane Austen")
    assert "Jane Austen" in tok.decode(ids[g0:g1]) and "answer" not in tok.decode(ids[g0:g1])
    assert tok.decode(ids).startswith("<think>") and tok.decode(ids).endswith("</answer>")


def test_batched_probe_equals_per_turn_probes(tiny):
    model, tok = tiny
    probe, g0, g1 = probe_tokens(tok, "Paris")
    gen = torch.Generator().manual_seed(0)
    rows = [ProbeRow(torch.randint(3, 400, (40,), generator=gen).tolist(), [5, 17, 30], probe, (g0, g1)),
            ProbeRow(torch.randint(3, 400, (25,), generator=gen).tolist(), [8, 25], probe, (g0, g1)),
            ProbeRow(torch.randint(3, 400, (12,), generator=gen).tolist(), [3, 7, 9, 12], probe, (g0, g1))]
    packed = probe_logprobs_packed(model, rows, tok.pad_token_id, batch_size=2)
    single = probe_logprobs_per_turn(model, rows)
    assert [len(r) for r in packed] == [3, 2, 4]
    for a, b in zip(packed, single):
        assert a == pytest.approx(b, abs=1e-5)
    assert len({round(v, 4) for v in packed[0]}) == 3  # the probes really see different contexts


# --------------------------------------------------------------------------- stop strings


class CharTokenizer:
    def decode(self, ids):
        return "".join(chr(i) for i in ids)


def test_cut_at_stop_keeps_the_shortest_prefix_containing_a_stop_string():
    ids = [ord(c) for c in "abc</search>xyz"]
    assert CharTokenizer().decode(cut_at_stop(ids, ("</search>", "</answer>"), CharTokenizer())) == "abc</search>"
    assert cut_at_stop(ids, ("</answer>",), CharTokenizer()) == ids
    assert cut_at_stop(ids, (), CharTokenizer()) == ids


def test_hf_engine_stops_at_a_stop_string(tiny):
    model, tok = tiny
    tok.padding_side = "left"
    engine = HFEngine(model, tok, bf16=False)
    prompt = tok("Question: Who wrote the book?", add_special_tokens=False)["input_ids"]
    params = SamplingParams(max_new_tokens=24, temperature=1.0)
    torch.manual_seed(1)
    free = engine.generate([prompt], params)[0]
    assert len(free) == 24
    # a stop string the model produces at tokens k, k+1 and nowhere before (prompt included)
    k = next(k for k in range(4, 20) if tok.decode(free[k:k + 2]).strip()
             and tok.decode(free[k:k + 2]) not in tok.decode(prompt + free[:k + 1]))
    stop = tok.decode(free[k:k + 2])
    torch.manual_seed(1)
    stopped = engine.generate([prompt], SamplingParams(max_new_tokens=24, temperature=1.0, stop=(stop, "</never>")))[0]
    assert stopped == free[:k + 2] == cut_at_stop(free, (stop,), tok)
    assert tok.decode(stopped).endswith(stop)


# --------------------------------------------------------------------------- the agent loop, scripted


class ScriptedEngine:
    """A fake policy: turn 1 searches the question's person, turn 2 answers, right with probability 1/2
    (drawn from torch's RNG, so a run is reproducible from its seed)."""

    def __init__(self, tokenizer, records):
        self.tok = tokenizer
        self.by_question = {r["prompt"]: r for r in records}

    def generate(self, prompts, params):
        assert params.stop == STOP
        out = []
        for ids in prompts:
            context = self.tok.decode(ids)
            record = self.by_question[re.search(r"Question: (.*?)\n", context).group(1)]
            agent_part = context.split("<|im_start|>assistant")[-1]
            for _ in range(params.n):
                if "<information>" not in agent_part:
                    reply = f"<think>look it up</think><search>{record['metadata']['supporting_titles'][0]}</search>"
                else:
                    answer = record["answers"][0] if torch.rand(()) < 0.5 else "nobody"
                    reply = f"<think>found</think><answer>{answer}</answer>"
                out.append(self.tok(reply, add_special_tokens=False)["input_ids"])
        return out

    def sync_weights(self, model):
        pass


@pytest.fixture(scope="module")
def world_data(data_dir):
    for name, split in [("igpo_world", "train"), ("igpo_world", "test"), ("igpo_world_corpus", "corpus")]:
        prepare(name, split, data_dir)
    return data_dir


def igpo_config(data_dir, **overrides):
    base = dict(experiment="igpo-t", method="igpo", model="tiny-llama", data_dir=str(data_dir), train_dataset="igpo_world",
                steps=3, prompts_per_step=2, group_size=4, max_new_tokens=16, save_every=2, lr=1e-3, max_prompt_tokens=160,
                micro_batch_size=4, kl_coef=0.05, seed=3, algo={"max_turns": 3, "top_k": 1, "max_words": 12})
    return TrainConfig(**{**base, **overrides})


@pytest.fixture
def scripted(monkeypatch, world_data):
    """Trainers built while this fixture is active sample from the scripted policy."""
    records = load_records("igpo_world", "train", world_data)
    monkeypatch.setattr("suite.trainer.make_engine", lambda kind, model, tok, *a, **k: ScriptedEngine(tok, records))


def test_scripted_policy_drives_the_multi_turn_loop_end_to_end(scripted, world_data):
    trainer = Trainer(igpo_config(world_data), world_data / "run-scripted")
    r = trainer.method.collect(0)
    tok = trainer.tokenizer
    assert len(r) == 8 and r.metrics["turns"] == 2.0 and r.metrics["search_calls"] == 1.0
    assert r.metrics["malformed_frac"] == 0.0 and "ig" in r.metrics
    for i in range(len(r)):
        mask, ids = r.loss_mask[i], r.completion_ids[i]
        observed = tok.decode([t for t, m in zip(ids, mask) if m == 0])
        generated = tok.decode([t for t, m in zip(ids, mask) if m == 1])
        # the observation tokens are exactly the environment's reply, and they carry no advantage
        assert observed.startswith("\n<information>Doc 1 (Title: ") and observed.endswith("</information>\n")
        assert generated.startswith("<think>look it up</think><search>") and generated.endswith("</answer>")
        assert all(a == 0.0 for a, m in zip(r.advantages[i], mask) if m == 0)
        assert r.rewards[i] in (0.0, 1.0) or 0 < r.rewards[i] < 1
        assert r.correct[i] == (r.rewards[i] == 1.0)
    # right answers get a higher last-turn advantage than wrong ones in their group
    last = [adv[-1] for adv in r.advantages]
    for g in range(2):
        rows = range(4 * g, 4 * g + 4)
        right = [last[i] for i in rows if r.correct[i]]
        wrong = [last[i] for i in rows if not r.correct[i]]
        if right and wrong:
            assert min(right) > max(wrong)
    stats = trainer.update(r)
    assert math.isfinite(stats["loss"]) and stats["grad_norm"] > 0


def test_prefilled_turn_openings_are_context_not_generated(world_data, tiny):
    from suite.agents.search_agent import open_engine

    _, tok = tiny
    replies = iter(["Pupi Lila</search>", "done</think><answer>Zuniru</answer>"])
    env = SearchEnv(open_engine("igpo_world_corpus", world_data, top_k=1), max_turns=3)
    episode = Episode(prompt_ids=[1, 2, 3], env=env)
    env.reset("In which city was Pupi Lila born?")
    run_episodes([episode], lambda contexts: [tok(next(replies), add_special_tokens=False)["input_ids"]], tok,
                 prefill="<think>", first_prefill="<search>")
    assert episode.turn_texts == ["<search>Pupi Lila</search>", "<think>done</think><answer>Zuniru</answer>"]
    assert episode.info["answer"] == "Zuniru" and episode.info["search_calls"] == 1
    generated = tok.decode([t for t, m in zip(episode.ids, episode.mask) if m])
    context = tok.decode([t for t, m in zip(episode.ids, episode.mask) if not m])
    assert generated == "Pupi Lila</search>done</think><answer>Zuniru</answer>"
    assert context.startswith("<search>\n<information>Doc 1 (Title: Pupi Lila)") and context.endswith("</information>\n<think>")
    assert [tok.decode(episode.ids[a:b]) for a, b in episode.turns] == ["Pupi Lila</search>", "done</think><answer>Zuniru</answer>"]


def test_loss_mask_excludes_observation_tokens(scripted, world_data):
    trainer = Trainer(igpo_config(world_data, kl_coef=0.0), world_data / "run-mask")
    r = trainer.method.collect(0)
    assert any(0 in m for m in r.loss_mask)

    def grads(advantages):
        rollouts = Rollouts(prompt_ids=r.prompt_ids[:2], completion_ids=r.completion_ids[:2], loss_mask=r.loss_mask[:2],
                            advantages=advantages, rewards=r.rewards[:2], correct=r.correct[:2], group=[0, 0])
        trainer.policy.zero_grad()
        batch = collate(rollouts, [0, 1], tok.pad_token_id)
        logp, _ = trainer.completion_logprobs(trainer.policy, batch)
        loss, _ = trainer.method.token_loss(batch, logp, logp.detach(), None)
        aggregate(loss, batch.loss_mask, "token-mean", total_tokens=10, total_seqs=2, max_len=16).backward()
        return [p.grad.clone() for p in trainer.policy.parameters() if p.grad is not None]

    tok = trainer.tokenizer
    base = [list(a) for a in r.advantages[:2]]
    noisy = [[a if m else 1e6 * (-1) ** j for j, (a, m) in enumerate(zip(adv, mask))]
             for adv, mask in zip(base, r.loss_mask[:2])]
    assert all(torch.equal(a, b) for a, b in zip(grads(base), grads(noisy)))


def test_grpo_f1_baseline_gives_one_group_advantage_to_every_generated_token(scripted, world_data):
    trainer = Trainer(igpo_config(world_data, algo={"reward_mode": "grpo_f1", "max_turns": 3, "top_k": 1}),
                      world_data / "run-grpo-f1")
    r = trainer.method.collect(0)
    assert "ig" not in r.metrics
    f1 = torch.tensor(r.rewards).view(2, 4)
    expected = ((f1 - f1.mean(1, keepdim=True)) / (f1.std(1, keepdim=True) + 1e-6)).flatten()
    for i in range(len(r)):
        values = {a for a, m in zip(r.advantages[i], r.loss_mask[i]) if m}
        assert len(values) == 1 and values.pop() == pytest.approx(float(expected[i]), abs=1e-5)


def test_interrupted_and_resumed_igpo_run_ends_with_identical_weights(scripted, world_data):
    cfg = igpo_config(world_data, steps=2, save_every=1, prompts_per_step=1, kl_coef=0.0)
    straight = Trainer(cfg, world_data / "run-igpo-straight")
    straight.run()
    first = Trainer(cfg, world_data / "run-igpo-resumed")
    first.run(max_steps=1)
    resumed = Trainer(cfg, world_data / "run-igpo-resumed", resume=True)
    assert resumed.start_step == 1
    resumed.run()
    assert_weights_moved(straight.policy, cfg.model)
    for (name, a), b in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().values()):
        assert torch.equal(a, b), name


# --------------------------------------------------------------------------- the lm-eval search agent


def test_search_agent_model_plays_the_episode_and_returns_the_transcript(world_data, tiny):
    records = load_records("igpo_world", "test", world_data)
    lm = SearchAgentLM(pretrained="tiny-llama", corpus="igpo_world_corpus", data_dir=str(world_data), top_k=1,
                       max_turns=3, batch_size=2)
    lm.engine = ScriptedEngine(lm.tokenizer, records)
    torch.manual_seed(0)
    requests = [SimpleNamespace(args=(lm.apply_chat_template([{"role": "user", "content": r["prompt"]}]),
                                      {"until": ["</answer>"], "max_gen_toks": 16, "do_sample": False}))
                for r in records[:3]]
    out = lm.generate_until(requests)
    for text, record in zip(out, records[:3]):
        person = record["metadata"]["supporting_titles"][0]
        assert text.startswith(f"<think>look it up</think><search>{person}</search>\n<information>Doc 1 (Title: {person})")
        assert text.endswith("</answer>") and text.count("<information>") == 1


def test_search_tasks_run_through_lm_eval(world_data, tmp_path):
    from suite.evaluate import evaluate

    out = tmp_path / "world.json"
    result = evaluate("tiny-llama", "igpo_world_search", out, data_dir=str(world_data), limit=2, batch_size=2,
                      overrides={"generation_kwargs": {"max_gen_toks": 8},
                                 "metadata": {"lm_args": {"corpus": "igpo_world_corpus", "top_k": 1, "max_turns": 2}}})
    assert result["backend"] == "rlrepro-search-agent" and result["n"] == 2
    assert set(result["metrics"]) == {"em", "f1"}
    assert out.with_name("world.json.samples.jsonl").is_file()


# --------------------------------------------------------------------------- data and profiles


def test_registered_search_datasets_from_the_fixture_mirror(tmp_path):
    train = load_records("hotpotqa_ircot", "train", prepare("hotpotqa_ircot", "train", tmp_path, FIXTURE_MIRROR).parents[1])
    test = load_records("hotpotqa_ircot", "test", prepare("hotpotqa_ircot", "test", tmp_path, FIXTURE_MIRROR).parents[1])
    assert len(train) + len(test) == 8 and {r["id"] for r in train}.isdisjoint(r["id"] for r in test)
    assert test[0]["metadata"]["supporting_titles"] and test[0]["answers"]
    prepare("igpo_wiki", "corpus", tmp_path, FIXTURE_MIRROR)
    corpus = load_records("igpo_wiki", "corpus", tmp_path)
    assert len(corpus) == 16 + 5 and set(corpus[0]) == {"id", "title", "text"}
    assert corpus[-1]["title"] == "Mars"  # FlashRAG 'contents' lines are split into title and text
    with pytest.raises(FileNotFoundError, match="hotpotqa/dev_subsampled_ircot.jsonl"):
        prepare("hotpotqa_ircot", "train", tmp_path / "none", mirror=None)
    world_test = {r["id"] for r in load_records("igpo_world", "test", prepare("igpo_world", "test", tmp_path).parents[1])}
    world_train = {r["id"] for r in load_records("igpo_world", "train", prepare("igpo_world", "train", tmp_path).parents[1])}
    assert world_test and world_test.isdisjoint(world_train)


def test_profile_rejects_a_bad_igpo_option():
    raw = {"profile": "x", "model": "tiny-llama", "data": {"dir": "d"}, "runs_dir": "r", "results_dir": "s",
           "eval": {"tasks": {"igpo_world_search": {}}},
           "experiments": {"e": {"paper": "igpo", "method": "igpo", "eval_tasks": ["igpo_world_search"],
                                 "train": {"algo": {"max_turns": 0}}}}}
    with pytest.raises((ConfigError, ValueError), match="max_turns"):
        parse_profile(raw)
