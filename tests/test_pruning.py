import numpy as np
import pytest

from workflow.evaluation.pruning import keep_masks, prune, pruned_stack


def test_keeps_exactly_the_lowest_scores_over_all_parameters():
    scores = {"a": np.array([[0.5, 0.1], [0.9, 0.3]]), "b": np.array([0.2, 0.8])}
    masks = keep_masks(scores, 0.5)  # 3 of 6: scores 0.1, 0.2, 0.3
    np.testing.assert_array_equal(masks["a"], [[False, True], [False, True]])
    np.testing.assert_array_equal(masks["b"], [True, False])
    assert sum(m.sum() for m in keep_masks(scores, 1.0).values()) == 6
    assert sum(m.sum() for m in keep_masks(scores, 0.0).values()) == 0


def test_ties_keep_exactly_the_asked_count():
    masks = keep_masks({"w": np.zeros(10)}, 0.3)
    assert masks["w"].sum() == 3


def test_prune_zeroes_the_rest_and_keeps_values(rng):
    params = {"w": rng.standard_normal((4, 5)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    sigma = {k: rng.uniform(0.1, 1.0, v.shape) for k, v in params.items()}
    pruned = prune(params, sigma, 0.25)
    kept = keep_masks(sigma, 0.25)
    for k in params:
        assert pruned[k].dtype == np.float32
        np.testing.assert_array_equal(pruned[k][kept[k]], params[k][kept[k]])
        assert np.all(pruned[k][~kept[k]] == 0)
    stack = pruned_stack(params, sigma, [1.0, 0.25])
    np.testing.assert_array_equal(stack["w"][0], params["w"])
    np.testing.assert_array_equal(stack["w"][1], pruned["w"])


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_bad_fractions_are_refused(fraction):
    with pytest.raises(ValueError, match="fraction"):
        keep_masks({"w": np.ones(3)}, fraction)


def test_mismatched_scores_are_refused():
    with pytest.raises(ValueError, match="different tensors"):
        prune({"w": np.ones(3)}, {"v": np.ones(3)}, 0.5)
    with pytest.raises(ValueError, match="finite"):
        keep_masks({"w": np.array([1.0, np.nan])}, 0.5)
