"""benchmarks/reward_curves.py: the summary of two trainers' reward curves, on hand-computed numbers."""

import pandas as pd
import pytest

from benchmarks.reward_curves import main, markdown, summarise


def curves() -> pd.DataFrame:
    rows = [("ours", s, r, 1.0) for s, r in zip(range(1, 5), [0.0, 0.5, 0.5, 1.0])]
    rows += [("trl", s, r, 3.0) for s, r in zip(range(1, 5), [0.25, 0.25, 0.0, 0.5])]
    return pd.DataFrame(rows, columns=["trainer", "step", "reward", "step_time"])


def test_summary_first_and_last_window_with_standard_errors():
    s = summarise(curves().sample(frac=1.0, random_state=0), window=2).set_index("trainer")  # order-free
    # ours: first [0, .5] mean .25, sd .3536, SE .25; last [.5, 1] mean .75, SE .25
    assert s.loc["ours", "first"] == pytest.approx(0.25) and s.loc["ours", "first_se"] == pytest.approx(0.25)
    assert s.loc["ours", "last"] == pytest.approx(0.75) and s.loc["ours", "last_se"] == pytest.approx(0.25)
    # trl: first [.25, .25] SE 0; last [0, .5] mean .25, SE .25
    assert s.loc["trl", "first_se"] == 0.0 and s.loc["trl", "last"] == pytest.approx(0.25)
    assert s.loc["trl", "s_per_step"] == 3.0 and s.loc["ours", "steps"] == 4
    table = markdown(summarise(curves(), 2), 2, "CMD")
    assert "| ours | 4 | 25.0 ± 25.0 | 75.0 ± 25.0 | 1.0 |" in table and "Made by `CMD`." in table
    assert not s.isna().any().any()


def test_a_window_without_a_standard_error_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--steps", "3", "--window", "1"])
    assert "--window must be in [2, --steps]" in capsys.readouterr().err
