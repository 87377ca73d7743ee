"""The model card's account of the final rung (`tuning.final.export`)."""

from __future__ import annotations

from tuning.final import export

RUNG = {"candidates": [{"trial": "0018", "val_accuracy": 0.9537}, {"trial": "0000", "val_accuracy": 0.9550}],
        "kept": "0000"}  # fmt: skip


def test_the_card_says_whether_the_rungs_loser_joined_the_ensemble_with_both_accuracies():
    joined = export._final_rung_line({**RUNG, "loser_joined": True,
                                      "ensemble_val_accuracy": {"with_loser": 0.9601, "without_loser": 0.9588}})
    assert "trial 0018 0.9537, trial 0000 0.9550" in joined
    assert "trial 0000's configuration was retrained, and the other's member joined the ensemble" in joined
    assert "0.9601 with it, 0.9588 without" in joined
    dropped = export._final_rung_line({**RUNG, "loser_joined": False,
                                       "ensemble_val_accuracy": {"with_loser": 0.95, "without_loser": 0.96}})
    assert "the other's member was dropped (the average's validation accuracy 0.9500 with it, 0.9600 without)" in dropped


def test_the_card_says_only_the_kept_trial_when_the_time_ended_inside_the_rung():
    line = export._final_rung_line({"candidates": [{"trial": "0018", "val_accuracy": 0.95}], "kept": "0018"})
    assert line.endswith("trial 0018's configuration was retrained.\n")
    assert export._final_rung_line(None) == ""
