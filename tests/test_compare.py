"""Predictive comparisons of Xiao et al.'s Table 1: agreement, total variation, accuracy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from workflow.compare import accuracy, agreement, total_variation


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
