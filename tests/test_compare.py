"""Predictive comparisons of Xiao et al.'s Table 1: agreement, total variation, accuracy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workflow.evaluation.compare import accuracy, agreement, total_variation


def test_agreement_and_total_variation_by_hand():
    ref = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    p = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]])
    assert agreement(p, ref) == pytest.approx(2 / 3)
    # TV per point: 0.1, 0.4, 0.0 -> mean 0.5/3
    assert total_variation(p, ref) == pytest.approx(0.5 / 3)
    assert agreement(ref, ref) == 1.0 and total_variation(ref, ref) == 0.0
    assert total_variation(np.eye(3), np.eye(3)[[1, 2, 0]]) == pytest.approx(1.0)
    assert accuracy(p, np.array([0, 1, 2])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same shape"):
        agreement(p[:2], ref)
    with pytest.raises(ValueError, match="sum to 1"):
        total_variation(p * 2, ref)


def probability_tables(n=st.integers(1, 30), c=st.integers(2, 8)):
    """Pairs of [N, C] probability tables (rows normalised from positive weights)."""
    def pair(shape):
        weights = arrays(np.float64, shape, elements=st.floats(1e-3, 1e3))
        return st.tuples(weights, weights).map(lambda w: tuple(x / x.sum(1, keepdims=True) for x in w))
    return st.tuples(n, c).flatmap(pair)


@settings(max_examples=60, deadline=None)
@given(probability_tables())
def test_total_variation_is_a_bounded_symmetric_distance(pq):
    p, q = pq
    tv = total_variation(p, q)
    assert 0.0 <= tv <= 1.0 + 1e-12
    assert tv == pytest.approx(total_variation(q, p), abs=1e-12)
    assert total_variation(p, p) == pytest.approx(0.0, abs=1e-12)
    # predictions that differ somewhere come from rows that differ: TV above 0
    assert 0.0 <= agreement(p, q) <= 1.0 and agreement(p, p) == 1.0
    if agreement(p, q) < 1.0:
        assert tv > 0.0


@settings(max_examples=60, deadline=None)
@given(probability_tables())
def test_accuracy_counts_argmax_hits(pq):
    p, _ = pq
    y = p.argmax(1)
    assert accuracy(p, y) == 1.0
    assert accuracy(p, (y + 1) % p.shape[1]) == 0.0


def test_expected_calibration_error_by_hand():
    from workflow.evaluation.compare import expected_calibration_error

    # confidences 0.9, 0.9, 0.6, 0.6 (bins (0.8667, 0.9333] and (0.6, 0.6667]... with 15 bins: 0.9 -> bin 13,
    # 0.6 -> bin 8); the 0.9 pair is half right (|0.5 - 0.9| = 0.4), the 0.6 pair all right (|1 - 0.6| = 0.4)
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    y = np.array([0, 1, 1, 1])
    assert expected_calibration_error(p, y) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    # one bin: |accuracy - mean confidence| = |3/4 - 0.75|
    assert expected_calibration_error(p, y, bins=1) == pytest.approx(0.0)
    # perfectly calibrated within each bin: confidence 0.5 on two classes, half right
    assert expected_calibration_error(np.full((4, 2), 0.5), np.array([0, 1, 0, 1])) == pytest.approx(0.0)
    # a confident wrong point: ECE = confidence
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error(p, y, bins=0)
    with pytest.raises(ValueError, match="labels"):
        expected_calibration_error(p, y[:3])


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 30), st.integers(0, 2 ** 31 - 1))
def test_expected_calibration_error_is_between_zero_and_one(bins, seed):
    from workflow.evaluation.compare import expected_calibration_error

    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(4), size=50)
    y = rng.integers(0, 4, size=50)
    assert 0.0 <= expected_calibration_error(p, y, bins) <= 1.0
