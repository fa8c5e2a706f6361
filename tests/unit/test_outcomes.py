"""Per-image outcomes: compact JSON round trip, majority vote, alignment."""
import json

import numpy as np
import pytest

from snnlib.robustness.outcomes import Outcomes, ids_to_ranges, pack_bits, ranges_to_ids, unpack_bits


def test_bits_round_trip_for_awkward_sizes():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 7), (5, 1017), (2, 8)]:
        b = rng.random(shape) < 0.5
        assert np.array_equal(unpack_bits(pack_bits(b), shape), b)


def test_ranges_round_trip_and_compactness():
    ids = [0, 1, 2, 3, 10, 11, 5]
    r = ids_to_ranges(ids)
    assert r == [[0, 4], [10, 12], [5, 6]]
    assert ranges_to_ids(r).tolist() == ids
    assert ids_to_ranges(range(1017)) == [[0, 1017]]


def test_outcomes_json_round_trip_and_majority():
    correct = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]], dtype=bool)   # K=3, N=4
    o = Outcomes([7, 8, 9, 20], correct, eval_seed=3, attack_seed=11)
    assert o.majority().tolist() == [True, False, False, False]
    assert o.mean().tolist() == pytest.approx([1, 1 / 3, 1 / 3, 1 / 3])
    d = json.loads(json.dumps(o.to_dict()))
    back = Outcomes.from_dict(d)
    assert np.array_equal(back.correct, correct) and back.image_ids.tolist() == [7, 8, 9, 20]
    assert (back.eval_seed, back.attack_seed) == (3, 11)
    assert d["majority_accuracy"] == 0.25


def test_even_draws_tie_counts_as_wrong():
    o = Outcomes([0, 1], np.array([[1, 1], [0, 1]], dtype=bool))
    assert o.majority().tolist() == [False, True]


def test_bad_shapes_and_missing_fields_are_errors():
    with pytest.raises(ValueError, match="image ids"):
        Outcomes([0, 1, 2], np.ones((2, 4), dtype=bool))
    d = Outcomes([0], np.ones((1, 1), dtype=bool)).to_dict()
    del d["correct"]
    with pytest.raises(KeyError, match="correct"):
        Outcomes.from_dict(d)


def test_subset_and_worst_case_over_aligned_parts():
    a = Outcomes([0, 1, 2], np.array([[1, 1, 0]], dtype=bool))
    b = Outcomes([0, 1, 2], np.array([[1, 0, 1]], dtype=bool))
    assert Outcomes.all_correct([a, b]).tolist() == [True, False, False]
    c = Outcomes([2, 0, 1], np.array([[1, 1, 1]], dtype=bool))
    with pytest.raises(ValueError, match="different images"):
        Outcomes.all_correct([a, c])
    assert c.subset([0, 1, 2]).aligned(a)
    with pytest.raises(KeyError, match="not in these outcomes"):
        a.subset([5])
