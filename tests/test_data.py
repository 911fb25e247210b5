"""Dataset registry, the prepare step (mirror / hub / generator) and its errors."""

import json

import pytest

from suite import data
from suite.data import DataFileError, DatasetNotFoundError, load_records, prepare, spec_from_dict
from tests.conftest import FIXTURE_MIRROR


def test_prepare_from_mirror_maps_to_common_schema(tmp_path):
    path = prepare("gsm8k", "test", tmp_path, mirror=FIXTURE_MIRROR)
    assert path == tmp_path / "gsm8k" / "test.jsonl"
    records = load_records("gsm8k", "test", tmp_path)
    assert len(records) == 6
    first = records[0]
    assert set(first) == {"id", "prompt", "answers", "metadata"}
    assert first["answers"] == ["7"] and first["prompt"].startswith("Tom has 3 apples")
    assert records[4]["answers"] == ["750"]  # "#### 750" after a worked solution with "1,200"


@pytest.mark.parametrize("name,n,answers0", [
    ("math500", 5, ["\\frac{5}{6}"]), ("aime24", 4, ["24"]), ("nq_open", 5, ["Paris"]), ("hotpotqa", 5, ["Paris"]),
])
def test_every_registered_benchmark_reads_its_mirror_file(tmp_path, name, n, answers0):
    prepare(name, "test", tmp_path, mirror=FIXTURE_MIRROR)
    records = load_records(name, "test", tmp_path)
    assert len(records) == n and records[0]["answers"] == answers0


def test_mirror_from_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(data.MIRROR_ENV, str(FIXTURE_MIRROR))
    prepare("nq_open", "test", tmp_path)
    assert load_records("nq_open", "test", tmp_path)[1]["answers"] == ["Jane Austen", "Austen"]


def test_missing_mirror_file_names_dataset_and_both_remedies(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        prepare("gsm8k", "test", tmp_path, mirror=tmp_path / "empty-mirror")
    message = str(err.value)
    assert "'gsm8k'" in message and "RLREPRO_DATA_MIRROR" in message and "openai/gsm8k" in message


def test_hub_failure_names_both_remedies(tmp_path, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.delenv(data.MIRROR_ENV, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DatasetNotFoundError, match="HuggingFaceH4/MATH-500.*local mirror"):
        prepare("math500", "test", tmp_path)
    # a generator that reads the hub itself (MMLU's) fails the same way, not with datasets' ConnectionError
    with pytest.raises(DatasetNotFoundError, match="'mmlu'.*cais/mmlu.*local mirror"):
        prepare("mmlu", "train", tmp_path)


def test_hub_rows_are_mapped_with_hub_field_names(tmp_path, monkeypatch):
    import datasets

    rows = [{"id": "5a8b", "question": "Q?", "answer": "yes", "type": "comparison", "level": "hard"}]
    monkeypatch.delenv(data.MIRROR_ENV, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, config, split: rows)
    prepare("hotpotqa", "test", tmp_path)
    [record] = load_records("hotpotqa", "test", tmp_path)
    assert record == {"id": "5a8b", "prompt": "Q?", "answers": ["yes"], "metadata": {"type": "comparison", "level": "hard"}}


def test_unknown_dataset_and_split():
    with pytest.raises(DatasetNotFoundError, match="unknown dataset 'gsm9k'.*gsm8k"):
        prepare("gsm9k", "test")
    with pytest.raises(DatasetNotFoundError, match="no split 'dev'"):
        prepare("math500", "dev")


def test_unprepared_data_says_how_to_prepare(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="python -m suite prepare aime24"):
        load_records("aime24", "test", tmp_path)


def test_arithmetic_splits_are_disjoint_and_correct(tmp_path):
    train = load_records("arithmetic_2d", "train", prepare("arithmetic_2d", "train", tmp_path).parent.parent)
    test = load_records("arithmetic_2d", "test", prepare("arithmetic_2d", "test", tmp_path).parent.parent)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    for r in train[:50]:
        a, _, b = r["prompt"].removeprefix("What is ").rstrip("?").split()
        assert r["answers"] == [str(int(a) + int(b))]


def test_inline_spec_from_yaml(tmp_path):
    spec = spec_from_dict("fixture_nq", {"mirror_files": {"test": "nq_open/NQ-open.dev.jsonl"},
                                         "fields": {"prompt": "Q: {question}", "answers": "answer"}})
    prepare(spec, "test", tmp_path, mirror=FIXTURE_MIRROR)
    assert load_records("fixture_nq", "test", tmp_path)[0]["prompt"] == "Q: what is the capital city of france"
    with pytest.raises(ValueError, match="unknown keys \\['hub'\\]"):
        spec_from_dict("x", {"hub": "a/b", "fields": {"prompt": "{q}", "answers": "a"}})


# --- source formats: parquet (verl), JSON lists, JSON lines under .json ------------------------------------

def _mirror_spec(name, rel, **fields):
    return spec_from_dict(name, {"mirror_files": {"test": rel}, "fields": fields})


def test_verl_parquet_with_chat_prompt_and_nested_ground_truth(tmp_path):
    import pandas as pd

    (tmp_path / "m" / "verl").mkdir(parents=True)
    pd.DataFrame([
        {"data_source": "openai/gsm8k", "ability": "math",
         "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"}],
         "reward_model": {"style": "rule", "ground_truth": "5"}, "extra_info": {"split": "test", "index": 7}},
        {"data_source": "openai/gsm8k", "ability": "math",
         "prompt": [{"role": "user", "content": "What is 4 * 4?"}],
         "reward_model": {"style": "rule", "ground_truth": "16"}, "extra_info": {"split": "test", "index": 8}},
    ]).to_parquet(tmp_path / "m" / "verl" / "test.parquet")
    spec = _mirror_spec("verl_math", "verl/*.parquet", prompt="{prompt}", answers="reward_model.ground_truth",
                        id="extra_info.index", metadata=["data_source"])
    prepare(spec, "test", tmp_path / "data", mirror=tmp_path / "m")
    records = load_records("verl_math", "test", tmp_path / "data")
    assert records == [
        {"id": "7", "prompt": "What is 2 + 3?", "answers": ["5"], "metadata": {"data_source": "openai/gsm8k"}},
        {"id": "8", "prompt": "What is 4 * 4?", "answers": ["16"], "metadata": {"data_source": "openai/gsm8k"}},
    ]
    # a dotted path into the chat picks one message explicitly
    spec = _mirror_spec("verl_sys", "verl/test.parquet", prompt="{prompt.0.role}: {prompt.0.content}",
                        answers="reward_model.ground_truth")
    prepare(spec, "test", tmp_path / "data", mirror=tmp_path / "m")
    assert [r["prompt"] for r in load_records("verl_sys", "test", tmp_path / "data")] == \
        ["system: Be brief.", "user: What is 4 * 4?"]


@pytest.mark.parametrize("text", [
    '[{"q": "A?", "a": "1"}, {"q": "B?", "a": "2"}]',           # a JSON list
    '{"data": [{"q": "A?", "a": "1"}, {"q": "B?", "a": "2"}]}',  # a list under one key
    '{"q": "A?", "a": "1"}\n{"q": "B?", "a": "2"}\n',          # JSON lines saved as .json
])
def test_json_files_as_lists_or_lines(tmp_path, text):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x.json").write_text(text)
    prepare(_mirror_spec("jl", "x.json", prompt="{q}", answers="a"), "test", tmp_path / "d", mirror=tmp_path / "m")
    assert [(r["prompt"], r["answers"]) for r in load_records("jl", "test", tmp_path / "d")] == [("A?", ["1"]), ("B?", ["2"])]


def test_choice_labels_map_to_letters(tmp_path):
    (tmp_path / "m").mkdir()
    row = {"id": "arc-1", "question": "Which is a metal?", "choices": {"label": ["1", "2", "3", "4"],
                                                                     "text": ["wood", "iron", "glass", "wool"]},
           "answerKey": "2"}
    (tmp_path / "m" / "arc.jsonl").write_text(json.dumps(row) + "\n")
    spec = _mirror_spec("arc_like", "arc.jsonl", prompt="{question}", answers="answerKey", id="id",
                        choices="choices.text", choice_labels="choices.label")
    prepare(spec, "test", tmp_path / "d", mirror=tmp_path / "m")
    [record] = load_records("arc_like", "test", tmp_path / "d")
    assert record["answers"] == ["B"] and record["prompt"] == "Which is a metal?\nA. wood\nB. iron\nC. glass\nD. wool"
    assert record["metadata"]["choices"] == ["wood", "iron", "glass", "wool"]


# --- the three benchmarks added as one YAML each (tasks/asdiv.yaml, triviaqa.yaml, commonsense_qa.yaml) -----

def test_new_benchmarks_prepare_by_name_from_their_task_yaml(tmp_path):
    """prepare(NAME) finds the inline spec in tasks/, reading the fixture mirror's parquet files."""
    for name in ("asdiv", "triviaqa_nocontext", "commonsense_qa"):
        prepare(name, "test", tmp_path, mirror=FIXTURE_MIRROR)
    asdiv = load_records("asdiv", "test", tmp_path)
    assert [r["answers"] for r in asdiv] == [["9"], ["7"], ["24"], ["300"], ["4"]]  # units dropped: "9 (apples)"
    assert asdiv[0]["prompt"] == ("Seven red apples and two green apples are in the basket. "
                                  "How many apples are in the basket?")
    trivia = load_records("triviaqa_nocontext", "test", tmp_path)
    assert trivia[1]["id"] == "tc_2" and trivia[1]["answers"] == ["Jane Austen", "Austen", "Miss Austen"]
    csqa = load_records("commonsense_qa", "test", tmp_path)
    assert [r["answers"] for r in csqa] == [["A"], ["B"], ["C"], ["D"], ["E"]]
    assert csqa[2]["prompt"].endswith("\nC. water\nD. cloud\nE. library") and len(csqa[2]["metadata"]["choices"]) == 5
    assert json.loads(data.spec_path(tmp_path, "asdiv", "test").read_text())["spec_hash"] == \
        data.spec_hash(data.get_spec("asdiv"))


def test_new_benchmarks_score_with_their_yaml_scorers(tmp_path):
    from suite.evaluate import load_task_config, task_manager

    manager = task_manager()
    meta = {"data_dir": str(tmp_path), "mirror": str(FIXTURE_MIRROR)}
    cases = [("asdiv", "So 9 apples. \\boxed{9}", "\\boxed{10}", "acc"),
             ("triviaqa", "Miss Austen", "Charlotte Bronte", "em"),
             ("commonsense_qa", "The answer is (A)", "ANSWER: B", "acc")]
    for task, right, wrong, metric in cases:
        cfg = load_task_config(manager, task)
        doc = cfg["custom_dataset"](**{**cfg["dataset_kwargs"], **meta})["test"][1 if task == "triviaqa" else 0]
        assert cfg["process_results"](doc, [[right]])[metric] == 1.0, task
        assert cfg["process_results"](doc, [[wrong]])[metric] == 0.0, task
    assert "A. cupboard" in cfg["doc_to_text"](doc) and "ANSWER: X" in cfg["doc_to_text"](doc)


# --- the multiple-choice scorer --------------------------------------------------------------------------

@pytest.mark.parametrize("response,letter", [
    ("ANSWER: B", "B"), ("The answer is (B)", "B"), ("B.", "B"), ("\\boxed{B}", "B"), ("B", "B"), ("(C)", "C"),
    ("B. Paris", "B"), ("\\boxed{\\text{D}}", "D"), ("answer: **C**", "C"), ("The correct answer is: A", "A"),
    ("Option A looks right but the answer is (D).", "D"),       # the stated answer, not the first letter seen
    ("ANSWER: A\n... no wait. ANSWER: C", "C"),                 # the last answer given
    ("\\boxed{B} since the answer is not A", "B"),             # \boxed outranks prose
    ("the answer is a dog", None), ("A man walks into a bar.", None), ("I think so.", None),
    ("The answer is E", None),                                  # only four options
    ("", None),
])
def test_extract_choice_accepts_the_usual_letter_forms(response, letter):
    from tasks.utils import extract_choice

    assert extract_choice(response, 4) == letter


def test_process_multiple_choice_averages_over_samples():
    from tasks.utils import process_multiple_choice

    doc = {"answers": ["B"], "metadata": {"choices": ["x", "y", "z"]}}
    assert process_multiple_choice(doc, [["ANSWER: B", "The answer is (A)", "\\boxed{B}", "D."]]) == {"acc": 0.5}


# --- inline specs: changed specs are prepared again; two files may not disagree ---------------------------

def _nq_spec(prompt="Q: {question}"):
    return {"mirror_files": {"test": "nq_open/NQ-open.dev.jsonl"}, "fields": {"prompt": prompt, "answers": "answer"}}


def test_changed_inline_spec_is_prepared_again(tmp_path):
    from tasks.utils import load_records as task_records

    kw = {"data_dir": str(tmp_path), "mirror": str(FIXTURE_MIRROR)}
    assert task_records("nq_inline", "test", spec=_nq_spec(), **kw)["test"][0]["prompt"].startswith("Q: what")
    path = data.data_path(tmp_path, "nq_inline", "test")
    stamp = path.stat().st_mtime_ns
    task_records("nq_inline", "test", spec=_nq_spec(), **kw)  # same spec: the prepared file is kept
    assert path.stat().st_mtime_ns == stamp
    rows = task_records("nq_inline", "test", spec=_nq_spec("Question: {question}"), **kw)["test"]
    assert rows[0]["prompt"].startswith("Question: what")  # spec changed: prepared again


def _task_yaml(folder, name, dataset, spec):
    import yaml

    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"task": name, "dataset_kwargs": {"dataset": dataset, "spec": spec}}))
    return path


def test_two_task_files_declaring_one_dataset_differently_name_both(tmp_path, monkeypatch):
    from suite.data import DatasetSpecError, declared_specs

    first = _task_yaml(tmp_path, "nq_a", "nq_inline", _nq_spec())
    _task_yaml(tmp_path, "nq_b", "nq_inline", _nq_spec())  # the same spec twice is fine
    assert declared_specs(tmp_path)["nq_inline"][1] == first
    second = _task_yaml(tmp_path, "nq_c", "nq_inline", _nq_spec("Question: {question}"))
    with pytest.raises(DatasetSpecError) as err:
        declared_specs(tmp_path)
    assert str(first) in str(err.value) and str(second) in str(err.value) and "'nq_inline'" in str(err.value)
    # the workflow's path: prepare by name through $RLREPRO_TASKS_DIR fails the same way
    monkeypatch.setenv(data.TASKS_DIR_ENV, str(tmp_path))
    with pytest.raises(DatasetSpecError, match="nq_c.yaml"):
        prepare("nq_inline", "test", tmp_path / "d", mirror=FIXTURE_MIRROR)


def test_inline_name_may_not_shadow_a_registered_dataset(tmp_path):
    from suite.data import DatasetSpecError, declared_specs

    _task_yaml(tmp_path, "my_gsm8k", "gsm8k", _nq_spec())
    with pytest.raises(DatasetSpecError, match="my_gsm8k.yaml.*REGISTRY already defines 'gsm8k'"):
        declared_specs(tmp_path)


def test_prepare_by_name_reads_a_declaration_in_the_tasks_dir(tmp_path, monkeypatch):
    _task_yaml(tmp_path, "nq_q", "nq_declared", _nq_spec())
    monkeypatch.setenv(data.TASKS_DIR_ENV, str(tmp_path))
    prepare("nq_declared", "test", tmp_path / "d", mirror=FIXTURE_MIRROR)
    assert load_records("nq_declared", "test", tmp_path / "d")[0]["prompt"] == "Q: what is the capital city of france"
    with pytest.raises(DatasetNotFoundError, match=f"unknown dataset 'nq_undeclared'.*no task YAML in {tmp_path}"):
        prepare("nq_undeclared", "test", tmp_path / "d", mirror=FIXTURE_MIRROR)


# --- mirror_files in the errors (issue 19 item 11) ------------------------------------------------------

def test_missing_inline_mirror_file_names_the_mirror_files_key(tmp_path):
    spec = spec_from_dict("svamp", {"hub_id": "ChilleD/SVAMP", "hub_splits": {"test": "test"},
                                    "mirror_files": {"test": "svamp/test.json"},
                                    "fields": {"prompt": "{Body} {Question}", "answers": "Answer"}})
    with pytest.raises(DatasetNotFoundError) as err:
        prepare(spec, "test", tmp_path, mirror=tmp_path / "m")
    assert "mirror_files: {test: svamp/test.json}" in str(err.value) and "ChilleD/SVAMP" in str(err.value)


def test_inline_dataset_without_mirror_file_or_hub_says_how_to_add_one(tmp_path, monkeypatch):
    import datasets

    no_hub = spec_from_dict("local_only", {"fields": {"prompt": "{q}", "answers": "a"}})
    with pytest.raises(DatasetNotFoundError, match="mirror_files: {test: local_only/test.jsonl}"):
        prepare(no_hub, "test", tmp_path, mirror=tmp_path)

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)  # a mirror without the file falls back to the hub
    hub_only = spec_from_dict("svamp", {"hub_id": "ChilleD/SVAMP", "hub_splits": {"test": "test"},
                                        "fields": {"prompt": "{Body} {Question}", "answers": "Answer"}})
    with pytest.raises(DatasetNotFoundError, match="ChilleD/SVAMP.*has no file for it.*mirror_files: {test: svamp/test"):
        prepare(hub_only, "test", tmp_path, mirror=tmp_path)


# --- bad data files: each named by file, line or key, with the fix (issue 20) ----------------------------

def _bad_mirror(tmp_path, text: str | bytes, name="rows.jsonl"):
    (tmp_path / "m").mkdir(exist_ok=True)
    path = tmp_path / "m" / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path, _mirror_spec("bad", name, prompt="{question}", answers="answer")


GOOD = '{"question": "q1", "answer": "1"}\n'


def test_cut_last_line_is_named_as_cut(tmp_path):
    path, spec = _bad_mirror(tmp_path, GOOD * 2 + '{"question": "q3", "ans')
    with pytest.raises(DataFileError, match=rf"{path}:3: the last line is cut off.*copy the file again"):
        prepare(spec, "test", tmp_path / "d", mirror=tmp_path / "m")


def test_bad_json_line_names_file_and_line(tmp_path):
    path, spec = _bad_mirror(tmp_path, GOOD + "{question: q2}\n" + GOOD)
    with pytest.raises(DataFileError, match=rf"{path}:2: not valid JSON"):
        prepare(spec, "test", tmp_path / "d", mirror=tmp_path / "m")


def test_missing_field_names_key_line_and_fields(tmp_path):
    path, spec = _bad_mirror(tmp_path, GOOD + '{"question": "q2", "Answer": "2"}\n')
    with pytest.raises(DataFileError) as err:
        prepare(spec, "test", tmp_path / "d", mirror=tmp_path / "m")
    message = str(err.value)
    assert f"{path}:2" in message and "'answer'" in message and "question, Answer" in message and "fields" in message
    # a missing placeholder of the prompt template, in a parquet file
    import pandas as pd

    pd.DataFrame([{"q": "x", "answer": "1"}]).to_parquet(tmp_path / "m" / "rows.parquet")
    spec = _mirror_spec("bad", "rows.parquet", prompt="{question}", answers="answer")
    with pytest.raises(DataFileError, match=r"rows.parquet row 0: dataset 'bad' needs field 'question'.*q, answer"):
        prepare(spec, "test", tmp_path / "d", mirror=tmp_path / "m")


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_empty_mirror_file_is_an_error_not_an_empty_dataset(tmp_path, text):
    path, spec = _bad_mirror(tmp_path, text)
    with pytest.raises(DataFileError, match=rf"{path}.*(empty|0 records).*copy it again" if text else rf"{path} is empty"):
        prepare(spec, "test", tmp_path / "d", mirror=tmp_path / "m")
    assert not data.data_path(tmp_path / "d", "bad", "test").exists()


def test_cut_csv_row_and_corrupt_parquet_are_named(tmp_path):
    path, spec = _bad_mirror(tmp_path, "question,answer\nq1,1\nq2\n", name="rows.csv")
    with pytest.raises(DataFileError, match=rf"{path}:3: 1 columns where the header has 2"):
        prepare(spec, "test", tmp_path / "d", mirror=tmp_path / "m")
    path, spec = _bad_mirror(tmp_path, b"PAR1 not really parquet", name="rows.parquet")
    with pytest.raises(DataFileError, match=rf"{path}: not a readable parquet file"):
        prepare(spec, "test", tmp_path / "d", mirror=tmp_path / "m")
    path, spec = _bad_mirror(tmp_path, '[{"question": "q1", "answer": "1"}, {"quest', name="rows.json")
    with pytest.raises(DataFileError, match=rf"{path}:1: not valid JSON"):
        prepare(spec, "test", tmp_path / "d", mirror=tmp_path / "m")


def test_corrupt_prepared_file_says_how_to_prepare_again(tmp_path):
    prepare("aime24", "test", tmp_path, mirror=FIXTURE_MIRROR)
    path = data.data_path(tmp_path, "aime24", "test")
    path.write_text(path.read_text()[:-20])
    with pytest.raises(DataFileError, match=rf"{path}:4: the last line is cut off.*python -m suite prepare aime24"):
        load_records("aime24", "test", tmp_path)
    path.write_text("")
    with pytest.raises(DataFileError, match=rf"{path} holds no records"):
        load_records("aime24", "test", tmp_path)


def test_hub_row_missing_field_names_the_hub_row(tmp_path, monkeypatch):
    import datasets

    monkeypatch.delenv(data.MIRROR_ENV, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, config, split: [{"question": "Q?"}])
    with pytest.raises(DataFileError, match=r"hub hotpotqa/hotpot_qa \(distractor\) split validation row 0: dataset 'hotpotqa' needs field 'answer'"):
        prepare("hotpotqa", "test", tmp_path)


def test_readme_svamp_example_works_offline_from_a_mirror(tmp_path):
    """The README's one-YAML example names mirror_files, and that file under a mirror is enough (no hub)."""
    import re as _re

    import yaml

    readme = (data.REPO_TASKS_DIR.parent / "README.md").read_text()
    block = _re.search(r"```yaml\n(# tasks/svamp.yaml\n.*?)```", readme, flags=_re.S).group(1)
    kwargs = yaml.safe_load(block)["dataset_kwargs"]
    rel = kwargs["spec"]["mirror_files"][kwargs["split"]]
    (tmp_path / "m" / rel).parent.mkdir(parents=True)
    (tmp_path / "m" / rel).write_text(json.dumps({"ID": "chal-1", "Body": "Ann has 3 pens.", "Question": "How many "
                                                  "after buying 2?", "Answer": 5.0}) + "\n")
    spec = spec_from_dict(kwargs["dataset"], kwargs["spec"])
    prepare(spec, kwargs["split"], tmp_path / "d", mirror=tmp_path / "m")
    assert load_records(kwargs["dataset"], "test", tmp_path / "d")[0]["answers"] == ["5.0"]
