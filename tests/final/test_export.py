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


def test_an_ensemble_of_two_architectures_lists_each_with_its_members():
    from tests.final.test_evaluate import chain
    from tuning.final import evaluate

    card = export._architecture(evaluate.average([chain(True), chain(True), chain(False)]))
    assert card.startswith("The average of the class probabilities of 3 networks (`member_0` to `member_2`), "
                           "retrained with different seeds, in 2 architectures:")  # fmt: skip
    assert "`member_0`, `member_1`:\n\n1. Flatten\n2. Dense 32 units, relu\n3. BatchNormalization\n4. Dropout rate 0.5\n" in card
    assert card.endswith("`member_2`:\n\n1. Flatten\n2. Dense 32 units, relu\n3. BatchNormalization\n4. Dense 3 units, softmax")
    same = export._architecture(evaluate.average([chain(False), chain(False)]))
    assert same.endswith("; each has these layers:\n\n1. Flatten\n2. Dense 32 units, relu\n3. BatchNormalization\n"
                         "4. Dense 3 units, softmax")  # fmt: skip


def test_a_joined_loser_is_named_by_its_trial_and_seed_and_a_dropped_one_is_not():
    joined = {**RUNG, "loser_joined": True, "loser_seed": 7,
              "ensemble_val_accuracy": {"with_loser": 0.96, "without_loser": 0.95}}  # fmt: skip
    assert export._joined_loser(joined) == ("0018", 7)
    assert export._joined_loser({**joined, "loser_joined": False}) is None
    assert export._joined_loser(RUNG) is None and export._joined_loser(None) is None
