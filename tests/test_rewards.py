"""Reward functions on hand-computed values: perfect, worst, tie and malformed cases each."""

import math

import pytest

from rankstack.training import rewards as R

L3 = math.log2(3)


def msgs(text):  # a conversational completion, as TRL passes it
    return [{"role": "assistant", "content": text}]


# --- ERank r_RR -----------------------------------------------------------------------------

def er(score):
    return f"<think>ok</think><answer>{score}</answer>"


def test_erank_perfect_worst_tie_malformed():
    # perfect: positive rollouts 9, 8 on top; negative 3 below (t = 0); one unformatted
    out = R.erank_reward([er(9), er(8), er(3), "score: 3"], qid=["q"] * 4, label=[2, 2, 0, 0])
    assert out == pytest.approx([1.0, 0.5, 1 - 0.09, -1.0])
    # worst: the negative outranks the only positive
    out = R.erank_reward([er(2), er(9)], qid=["q", "q"], label=[1, 0], teacher_score=[8, 1])
    assert out == pytest.approx([0.5, -1.0])
    # tie: both rank 1 (minimum rank); the negative is not *above* the positive
    out = R.erank_reward([er(5), er(5)], qid=["q", "q"], label=[1, 0], teacher_score=[10, 0])
    assert out == pytest.approx([1.0, 0.75])
    # malformed: out-of-range score, missing think, chat-message completions handled
    out = R.erank_reward([er(11), "<answer>4</answer>", msgs(er(4))], qid=["a", "a", "b"], label=[1, 1, 1])
    assert out == pytest.approx([-1.0, -1.0, 1.0])


def test_erank_pools_per_query_and_uses_prefix():
    out = R.erank_reward(["ok</think><answer>7</answer>", er(9)], qid=["a", "b"], label=[0, 0],
                         teacher_score=[7, 4], assistant_prefix=["<think>", ""])
    assert out == pytest.approx([1.0, 1 - 0.25])


# --- GroupRank ------------------------------------------------------------------------------

def gr(obj):
    return f"<reason>because</reason>\n<answer>\n```json\n{obj}\n```\n</answer>"


def test_grouprank_perfect_worst_tie_malformed():
    grades = [[2, 0]] * 6
    out = R.grouprank_reward([gr('{"[1]": 10, "[2]": 0}'), gr('{"[1]": 0, "[2]": 10}'),
                              gr('{"[1]": 5, "[2]": 5}'), gr('{"[1]": 5, "[2]": '),
                              "<answer>{}</answer>", msgs(gr('{"[1]": 9}'))], grades=grades)
    perfect = 1 + 0.2 + 0.1 * 1  # nDCG 1, Recall 1, JS 0
    worst = 1 / L3 + 0.2 + 0.0  # doc 1 (gain 2) at rank 2; JS of disjoint distributions = 1
    # tie: order by position (nDCG 1); P = (.5,.5), Q = (1,0), M = (.75,.25)
    js = 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)) + 0.5 * math.log2(1 / 0.75)
    assert out[0] == pytest.approx(perfect, abs=1e-6)
    assert out[1] == pytest.approx(worst, abs=1e-6)
    assert out[2] == pytest.approx(1.2 + 0.1 * (1 - js), abs=1e-6)
    assert out[3] == -0.1 and out[4] == -0.5
    assert out[5] == pytest.approx(perfect, abs=1e-6)  # a left-out doc scores 0


def test_gold_scores_from_grades():
    assert R.gold_scores_from_grades([3, 0, 1]) == [10, 0, 3]
    assert R.gold_scores_from_grades([1, 1]) == [0, 0]


# --- ReasonRank ------------------------------------------------------------------------------

def rr(ans):
    return f"<think>compare</think> <answer>{ans}</answer>"


def test_reasonrank_perfect_worst_tie_malformed():
    g = [0, 2, 1]
    out = R.reasonrank_reward([rr("[2] > [3] > [1]"), rr("[1] > [3] > [2]"), "[2] > [3] > [1]",
                               rr("[2] > [2] > [1]"), rr("[2] > [3]"), rr("[2] > [3] > [4]")], grades=[g] * 6)
    assert out[0] == pytest.approx(1.3)
    ndcg_worst = (1 / L3 + 2 / 2) / (2 + 1 / L3)
    ao_worst = (0 + 1 / 2 + 3 / 3) / 3
    assert out[1] == pytest.approx(ndcg_worst + 0.2 + 0.1 * ao_worst)
    assert out[2:] == [-1.0, 0.0, 0.0, 0.0]


def test_reasonrank_tie_in_grades_and_teacher():
    g = [1, 1, 0]
    a, b = R.reasonrank_reward([rr("[1] > [2] > [3]"), rr("[2] > [1] > [3]")], grades=[g, g])
    assert a == pytest.approx(1.3)  # ideal order keeps shown order on ties
    assert b == pytest.approx(1.2 + 0.1 * (0 + 1 + 1) / 3)  # same nDCG/recall, lower overlap
    (c,) = R.reasonrank_reward([rr("[2] > [1] > [3]")], grades=[g], teacher=[[2, 1, 3]])
    assert c == pytest.approx(1.3)
    # Recall@10 at rel=2: no doc is relevant at that level -> 0
    (d,) = R.reasonrank_reward([msgs(rr("[1] > [2] > [3]"))], grades=[g], rel=2)
    assert d == pytest.approx(1.0 + 0.1)


def test_average_overlap():
    assert R.average_overlap([0, 1, 2], [0, 1, 2]) == 1.0
    assert R.average_overlap([2, 1, 0], [0, 1, 2]) == pytest.approx((0 + 1 / 2 + 1) / 3)


# --- Retro* ----------------------------------------------------------------------------------

def sc(x):
    return f"analysis... <score>\n{x}\n</score>"


def test_retro_perfect_worst_tie_malformed():
    q = ["q"] * 6
    d = ["p", "p", "p", "n", "n", "n"]
    lab = [1, 1, 1, 0, 0, 0]
    # perfect: positives 90 80 40 (mean 70: 80 closest +1, 40 furthest -1), negatives 10 20 30 (spread < 20)
    out = R.retro_reward([sc(90), sc(80), sc(40), sc(10), sc(20), sc(30)], qid=q, docid=d, label=lab)
    assert out == pytest.approx([0.25, 1.0, -0.5, 0.25, 0.25, 0.25])
    # worst: every negative above every positive -> inter 0
    out = R.retro_reward([sc(10), sc(12), sc(14), sc(90), sc(91), sc(92)], qid=q, docid=d, label=lab)
    assert out == pytest.approx([0.0] * 6)
    # tie: equal scores are not ranked above one another
    out = R.retro_reward([sc(50), sc(50)], qid=["q", "q"], docid=["p", "n"], label=[1, 0])
    assert out == pytest.approx([0.0, 0.0])
    # malformed: -1 intra, left out of the mean and of inter; 150 is out of scale
    out = R.retro_reward([sc(60), "no score", sc(150), sc(20)], qid=["q"] * 4, docid=["p", "p", "p", "n"],
                         label=[1, 1, 1, 0])
    assert out == pytest.approx([0.25, -0.75, -0.75, 0.25])


def test_retro_ties_on_distance_all_get_it():
    # 0, 50, 100 -> mean 50: 50 closest (+1), 0 and 100 both furthest (-1)
    out = R.retro_reward([sc(0), sc(50), sc(100)], qid=["q"] * 3, docid=["d"] * 3, label=[1] * 3)
    assert out == pytest.approx([-0.75, 0.75, -0.75])


# --- Rank-R1 and ProRank -----------------------------------------------------------------------

def test_rankr1_exact_answer():
    out = R.rankr1_reward(["<think>x</think> <answer>[3]</answer>", "<think>x</think><answer>[1]</answer>",
                           "<think>x</think><answer>[1]</answer>", "<answer>[3]</answer>", "[3]",
                           msgs("<think></think><answer>[3]</answer>")], gold=[3, 3, [1, 2], 3, 3, 3])
    assert out == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert R.rankr1_reward(["3]</answer>"], gold=[3], assistant_prefix=["<think></think><answer>["]) == [1.0]


def test_prorank_format_and_label():
    out = R.prorank_reward(["1", " 0\n", "1", "yes", msgs("0")], label=[2, 2, 0, 1, 0])
    assert out == [2.0, 1.0, 1.0, 0.0, 2.0]


# --- registry ----------------------------------------------------------------------------------

def test_build_and_combine():
    funcs, weights = R.build_rewards("reasonrank:1, rankr1:0.5", rel=2)
    assert weights == [1.0, 0.5] and funcs[0].__name__ == "reasonrank_reward"
    comb = R.combine([R.prorank_reward, R.prorank_reward], [1.0, 0.5])
    assert comb(["1"], label=[1]) == [3.0]
    with pytest.raises(Exception):
        R.build_rewards("nope")
