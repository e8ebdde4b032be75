"""The launcher's terminal: trial lines name the norm and eps of their robust accuracy, and the
progress bar shows counts by state, an ETA and the best robust accuracy so far."""

from __future__ import annotations

from types import SimpleNamespace

from sweep.progress import ProgressCallback, headline_budget


def _trial(tid, status, ra, rank):
    config = {"rank": rank, "norms": ["linf", "l2"], "eps_linf": [0.02, 0.05],
              "eps_l2": [0.25, 0.5]}
    return SimpleNamespace(trial_id=tid, status=status, config=config,
                           last_result={"clean_acc": 0.9, "robust_acc": ra,
                                        "spectral_comp": 0.3, "neuron_comp": 0.1})


def test_headline_budget_is_the_first_norm_at_its_largest_eps():
    assert headline_budget({"norms": ["l2", "linf"], "eps_l2": [0.5, 0.25]}) == "l2 eps=0.5"
    assert headline_budget({}) == ""


def test_trial_lines_and_bar(capsys):
    progress = ProgressCallback(["rank"], total=3, summary_seconds=0.0)
    trials = [_trial("a", "TERMINATED", 0.61, 8), _trial("b", "TERMINATED", 0.72, 32),
              _trial("c", "RUNNING", 0.5, 1)]
    progress.on_trial_complete(1, trials, trials[0])
    progress.on_trial_complete(2, trials, trials[1])
    progress.on_step_end(3, trials)
    progress.on_experiment_end(trials)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("[1/3] a done: rank=8 |")
    assert "robust_acc(linf eps=0.05)=0.610" in lines[0]
    assert "robust_acc(linf eps=0.05)=0.720" in lines[1]
    # the bar: 2 of 3, counts by state, the best RA so far, and tqdm's ETA field
    assert "2/3" in err and "2 done, 1 running" in err and "best RA 0.720" in err
    assert "<" in err  # elapsed<remaining
