"""PathTrie (the loader's overlap check, linear in the rules) against the pairwise definition
by :func:`proxy.policy.paths.is_prefix` it replaced."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from proxy.policy.paths import WILDCARD, PathTrie, is_prefix, parse_path

SEGMENTS = st.sampled_from(["a", "b", "*", 0, 1, 2, WILDCARD])
PATHS = st.lists(st.lists(SEGMENTS, min_size=1, max_size=4).map(tuple), min_size=1, max_size=25)


@settings(max_examples=400, deadline=None)
@given(PATHS)
def test_related_equals_the_pairwise_definition(paths):
    trie = PathTrie()
    for i, p in enumerate(paths):
        trie.add(p, i)
    for b in paths:
        ancestors, same = trie.related(b)
        want_anc = sorted(j for j, a in enumerate(paths) if len(a) < len(b) and is_prefix(a, b))
        want_same = sorted(j for j, a in enumerate(paths) if len(a) == len(b) and is_prefix(a, b))
        assert sorted(ancestors) == want_anc
        assert sorted(same) == want_same


def test_a_key_named_star_is_not_the_wildcard():
    trie = PathTrie()
    trie.add(parse_path('orders."*"'), "key")
    trie.add(parse_path("orders[*]"), "wild")
    assert trie.related(parse_path("orders[3].card")) == (["wild"], [])
    assert trie.related(parse_path('orders."*".x')) == (["key"], [])
