"""Dataset registry, the prepare step (mirror / hub / generator) and its errors."""

import pytest

from suite import data
from suite.data import DatasetNotFoundError, load_records, prepare, spec_from_dict
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
