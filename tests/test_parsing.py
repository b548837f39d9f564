"""Permutation parsing: never raises; every repair counted."""

from __future__ import annotations

import string
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from rankstack.rerankers.parsing import PermutationParser, count_parse, extract_answer, parse_permutation


@given(text=st.text(), n=st.integers(1, 30), ids=st.sampled_from(["numeric", "alpha"]))
def test_any_string_gives_a_permutation_of_the_window(text, n, ids):
    p = parse_permutation(text, n, ids)
    assert sorted(p.order) == list(range(n))


@given(perm=st.permutations(list(range(20))), sep=st.sampled_from([" > ", ">", ", ", " "]),
       ids=st.sampled_from(["numeric", "alpha"]))
def test_a_valid_permutation_string_is_parsed_exactly(perm, sep, ids):
    label = (lambda i: str(i + 1)) if ids == "numeric" else (lambda i: string.ascii_uppercase[i])
    text = sep.join(f"[{label(i)}]" for i in perm)
    p = parse_permutation(text, 20, ids)
    assert p.order == list(perm) and p.ok
    stats = Counter()
    count_parse(stats, p)
    assert stats == Counter(outputs_parsed=1)


def test_each_repair_case():
    p = parse_permutation("[2] > [2] > [9] > [0] > [1]", 4)
    assert p.order == [1, 0, 2, 3]  # duplicate dropped, 9 and 0 out of range, 3 and 4 appended in order
    assert (p.duplicates, p.out_of_range, p.missing, p.no_ids) == (1, 2, 2, False)
    stats = Counter()
    count_parse(stats, p)
    assert stats["outputs_repaired"] == 1 and stats["parse_duplicates"] == 1
    assert stats["parse_out_of_range"] == 1 and stats["parse_missing"] == 1
    assert stats["ids_dropped"] == 3 and stats["ids_appended"] == 2


def test_no_ids_leaves_the_window_unchanged_and_is_counted():
    p = parse_permutation("I cannot rank these passages.", 5)
    assert p.order == [0, 1, 2, 3, 4] and p.no_ids
    stats = Counter()
    count_parse(stats, p)
    assert stats["parse_no_ids"] == 1 and stats["outputs_repaired"] == 1 and stats["parse_missing"] == 0


def test_letters_map_a_to_first_and_unbracketed_letters_work():
    assert parse_permutation("[C] > [a] > [B]", 3, "alpha").order == [2, 0, 1]
    assert parse_permutation("C > A > B", 3, "alpha").order == [2, 0, 1]
    assert parse_permutation("[Z] > [B]", 3, "alpha").order == [1, 0, 2]  # Z out of range


def test_reasonrank_answer_extraction_and_fallbacks():
    assert extract_answer("<think>[1] is off</think> <answer>[2] > [1]</answer>").text == "[2] > [1]"
    a = extract_answer("<think>x</think><answer>[3] > [1]")
    assert (a.text, a.source) == ("[3] > [1]", "after_last_answer_tag")
    assert extract_answer("[2] > [1]").source == "whole_text"
    parser = PermutationParser(reasoning=True)
    stats = Counter()
    assert parser("<think>[1] looks good</think> <answer>[2] > [3] > [1]</answer>", 3, stats) == [1, 2, 0]
    assert stats["outputs_repaired"] == 0 and stats["parse_no_answer_tag"] == 0
    assert parser("[3] > [2] > [1]", 3, stats) == [2, 1, 0]
    assert stats["parse_no_answer_tag"] == 1 and stats["parse_no_think_close"] == 1
    parser("<think>..</think><answer>[2] > [1", 3, stats)
    assert stats["parse_unclosed_answer"] == 1
    parser("<think>..</think><answer>[2] > [1] > [3]", 3, stats, stopped_at_answer_end=True)
    assert stats["parse_unclosed_answer"] == 1  # stopped at the stop string "</answer>": not a repair
