"""GRPO reward functions, one per published variant, with TRL's reward signature.

Each is a plain function ``f(completions, **columns) -> list[float]``: TRL's ``GRPOTrainer``
calls it with every completion of a generation batch (each prompt repeated ``num_generations``
times) and the dataset's other columns, one value per completion. ``completions`` may be
strings or chat-message lists (conversational datasets); both are handled. When the prompt
ended with an assistant prefix (``assistant_prefix`` column, e.g. ``"<think>"``), the prefix is
put back in front of the completion before judging it, since the model saw it as its own text.

Rewards judge the raw output strictly: their format gates (a regex that fails gives -1, a JSON
that does not load gives -0.1, ...) are part of each published reward, while the rerankers'
parsers repair output at inference time. Ranking measures go through ir-measures.

| name         | method      | needs the columns                                    |
|--------------|-------------|------------------------------------------------------|
| ``erank``      | ERank r_RR  | ``qid``, ``label`` (grade), optional ``teacher_score`` |
| ``grouprank``  | GroupRank R_G | ``grades``, optional ``gold_scores``                 |
| ``reasonrank`` | ReasonRank  | ``grades``, optional ``teacher`` (1-based order)       |
| ``retro``      | Retro*      | ``qid``, ``docid``, ``label``                            |
| ``rankr1``     | Rank-R1     | ``gold`` (1-based label or list of accepted labels)   |
| ``prorank``    | ProRank     | ``label``                                              |

``reward(name, **params)`` returns a named callable with fixed parameters (e.g. ``rel=2`` for
TREC DL); ``build_rewards("reasonrank:1,rankr1:0.5")`` returns functions and weights for
``GRPOConfig.reward_weights``; ``combine`` sums weighted rewards into one function.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from rankstack.errors import RankstackError, UsageError

# --- completions -------------------------------------------------------------------------


def completion_text(completion) -> str:
    """The text of one completion: a string, or the assistant contents of a chat-message list."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, Sequence):
        parts = [m.get("content", "") if isinstance(m, dict) else str(m) for m in completion
                 if not isinstance(m, dict) or m.get("role", "assistant") == "assistant"]
        return "".join(str(p) for p in parts)
    return str(completion)


def _texts(completions, assistant_prefix=None) -> list[str]:
    out = [completion_text(c) for c in completions]
    if assistant_prefix is not None:
        out = [(p or "") + t for p, t in zip(_column(assistant_prefix, len(out)), out)]
    return out


def _column(values, n: int) -> list:
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise RankstackError(f"reward column has {len(values)} values for {n} completions")
    return values


# --- ranking measures (ir-measures) ---------------------------------------------------------


def ranking_measures(orders: Sequence[Sequence[int]], grades: Sequence[Sequence[int]], rel: int = 1,
                     k: int = 10) -> list[tuple[float, float]]:
    """(nDCG@k with the grades as gains, Recall@k at level ``rel``) of each order (0-based indices
    into its ``grades``), computed by ir-measures in one call."""
    import ir_measures

    if not orders:
        return []
    ndcg, recall = ir_measures.nDCG @ k, ir_measures.R(rel=rel) @ k
    qrels, run = [], []
    for i, (order, gr) in enumerate(zip(orders, grades)):
        qid = f"c{i}"
        qrels += [ir_measures.Qrel(qid, f"d{j}", int(g)) for j, g in enumerate(gr)]
        n = len(order)  # rank-consistent scores: ir-measures would otherwise break ties by docid
        run += [ir_measures.ScoredDoc(qid, f"d{j}", float(n - r)) for r, j in enumerate(order)]
    vals: dict[tuple[str, str], float] = {}
    for m in ir_measures.iter_calc([ndcg, recall], qrels, run):
        vals[(m.query_id, str(m.measure))] = float(m.value)
    return [(vals.get((f"c{i}", str(ndcg)), 0.0), vals.get((f"c{i}", str(recall)), 0.0)) for i in range(len(orders))]


def average_overlap(pred: Sequence, ref: Sequence, k: int | None = None) -> float:
    """AO@k = (1/k) sum_{d<=k} |pred[:d] & ref[:d]| / d (ReasonRank's RBO with p=1)."""
    k = k or max(len(pred), len(ref))
    if k == 0:
        return 0.0
    return sum(len(set(pred[:d]) & set(ref[:d])) / d for d in range(1, k + 1)) / k


def ideal_order(grades: Sequence[int]) -> list[int]:
    """0-based indices by grade, descending; ties keep the given (first-stage) order."""
    return sorted(range(len(grades)), key=lambda j: -grades[j])


def _js_divergence(p: Sequence[float], q: Sequence[float], eps: float = 1e-8) -> float:
    """Jensen-Shannon divergence (log base 2, in [0, 1]) of two non-negative score vectors,
    each normalised by its sum after adding ``eps``."""
    from scipy.spatial.distance import jensenshannon

    pp = [max(float(x), 0.0) + eps for x in p]
    qq = [max(float(x), 0.0) + eps for x in q]
    return float(jensenshannon(pp, qq, base=2) ** 2)  # scipy returns the distance (sqrt)


# --- ERank r_RR ----------------------------------------------------------------------------

_ERANK_RE = re.compile(r"^\s*<think>.*?</think>\s*<answer>\s*(\d+)\s*</answer>\s*$", re.S)
_ERANK_NOTHINK_RE = re.compile(r"^\s*(?:<think>.*?</think>\s*)?<answer>\s*(\d+)\s*</answer>\s*$", re.S)


def parse_erank_answer(text: str, require_think: bool = True) -> int | None:
    """The integer score of an ERank rollout, strictly formatted (what r_RR rewards).

    Args:
        text: the whole completion (prefix included): ``<think>...</think><answer>N</answer>``.
        require_think: the reasoning block is required (False: optional).

    Returns:
        ``N`` when the rollout is formatted and 0 <= N <= 10, else None. (The reranker's
        lenient reading, with repairs and the score's probability, is
        :func:`rankstack.rerankers.pointwise.erank_score`.)
    """
    m = (_ERANK_RE if require_think else _ERANK_NOTHINK_RE).match(text)
    if not m:
        return None
    s = int(m.group(1))
    return s if 0 <= s <= 10 else None


def erank_reward(completions, qid, label, teacher_score=None, assistant_prefix=None, positive_min: int = 1,
                 require_think: bool = True, **_) -> list[float]:
    """ERank's listwise-derived reward r_RR.

    All formatted rollouts of a query in the batch are pooled and ranked by score, descending
    (ties take the minimum rank); phi = a rollout's rank. Unformatted -> -1; a positive
    (``label >= positive_min``) -> 1/phi; a negative ranked above the worst positive -> -1;
    otherwise 1 - ((s - t)/10)^2 with t the ``teacher_score`` (default 0 [DEFAULT]).
    """
    from scipy.stats import rankdata

    texts = _texts(completions, assistant_prefix)
    n = len(texts)
    qids, labels, teach = _column(qid, n), _column(label, n), _column(teacher_score, n)
    scores = [parse_erank_answer(t, require_think) for t in texts]
    out = [-1.0] * n
    by_q: dict = defaultdict(list)
    for i, s in enumerate(scores):
        if s is not None:
            by_q[qids[i]].append(i)
    for idx in by_q.values():
        ranks = rankdata([-scores[i] for i in idx], method="min")
        phi = {i: int(r) for i, r in zip(idx, ranks)}
        pos_ranks = [phi[i] for i in idx if labels[i] >= positive_min]
        worst_pos = max(pos_ranks) if pos_ranks else None
        for i in idx:
            if labels[i] >= positive_min:
                out[i] = 1.0 / phi[i]
            elif worst_pos is not None and phi[i] < worst_pos:
                out[i] = -1.0
            else:
                t = float(teach[i]) if teach[i] is not None else 0.0
                out[i] = 1.0 - ((scores[i] - t) / 10.0) ** 2
    return out


# --- GroupRank R_G ---------------------------------------------------------------------------

_GROUP_TAGS_RE = re.compile(r"^\s*<reason>.*?</reason>\s*<answer>(.*?)</answer>\s*$", re.S)
_JSON_BLOCK_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_ID_KEY_RE = re.compile(r"^\s*\[?\s*(\d+)\s*\]?\s*$")


def parse_grouprank(text: str, n: int) -> tuple[str, list[float] | None]:
    """``("ok", scores)``, ``("json", None)`` (tags right, JSON invalid) or ``("tags", None)``.

    Strict: the answer's last ```json``` block (else the answer itself) must load as a JSON
    object with keys ``"[i]"``; a doc the object leaves out scores 0 [DEFAULT].
    """
    m = _GROUP_TAGS_RE.match(text)
    if not m:
        return "tags", None
    answer = m.group(1)
    blocks = _JSON_BLOCK_RE.findall(answer)
    raw = blocks[-1] if blocks else answer
    try:
        obj = json.loads(raw.strip())
    except ValueError:
        return "json", None
    if not isinstance(obj, dict):
        return "json", None
    scores = [0.0] * n
    for key, v in obj.items():
        km = _ID_KEY_RE.match(str(key))
        if not km or isinstance(v, bool) or not isinstance(v, (int, float)):
            return "json", None
        j = int(km.group(1)) - 1
        if 0 <= j < n:
            scores[j] = float(v)
    return "ok", scores


def gold_scores_from_grades(grades: Sequence[int]) -> list[int]:
    """GroupRank's 0-10 gold scores [DEFAULT]: round(10 * min-max(grades)) within the group."""
    lo, hi = min(grades), max(grades)
    return [round(10 * (g - lo) / (hi - lo)) if hi > lo else 0 for g in grades]


def grouprank_reward(completions, grades, gold_scores=None, assistant_prefix=None, rel: int = 1,
                     eps: float = 1e-8, **_) -> list[float]:
    """GroupRank: R_G = nDCG@10 + 0.2 Recall@10 + 0.1 (1 - JS(P || Q)) if tags and JSON are
    right; -0.1 if the tags are right but the JSON is invalid; -0.5 otherwise.

    P = predicted scores, Q = ``gold_scores`` (default: from the grades), each normalised by its
    sum within the group (+eps); JS with log base 2, so in [0, 1]. The predicted order sorts by
    score, ties by shown position.
    """
    texts = _texts(completions, assistant_prefix)
    n = len(texts)
    grades_c, gold_c = _column(grades, n), _column(gold_scores, n)
    out = [0.0] * n
    todo = []
    for i, t in enumerate(texts):
        status, scores = parse_grouprank(t, len(grades_c[i]))
        if status == "tags":
            out[i] = -0.5
        elif status == "json":
            out[i] = -0.1
        else:
            todo.append((i, scores))
    orders = [sorted(range(len(s)), key=lambda j: -s[j]) for _, s in todo]
    measures = ranking_measures(orders, [grades_c[i] for i, _ in todo], rel=rel)
    for (i, s), (ndcg, rec) in zip(todo, measures):
        gold = gold_c[i] if gold_c[i] is not None else gold_scores_from_grades(grades_c[i])
        out[i] = ndcg + 0.2 * rec + 0.1 * (1.0 - _js_divergence(s, gold, eps))
    return out


# --- ReasonRank multi-view ------------------------------------------------------------------

_REASON_RE = re.compile(r"^\s*<think>.*?</think>\s*<answer>(.*?)</answer>\s*$", re.S)
_BRACKET_ID_RE = re.compile(r"\[(\d+)\]")


def reasonrank_reward(completions, grades, teacher=None, assistant_prefix=None, rel: int = 1,
                      require_think: bool = True, **_) -> list[float]:
    """ReasonRank's multi-view reward: -1 if the ``<think>..</think><answer>..</answer>`` regex
    fails; 0 if the answer's ``[i]`` ids are not exactly the window's ids once each; else
    nDCG@10 + 0.2 Recall@10 + 0.1 AO(pred, teacher) (``teacher``: 1-based ids, default the
    ideal order by grade, ties by shown position). With ``require_think=False`` the think block
    may be absent (no-reasoning variant)."""
    texts = _texts(completions, assistant_prefix)
    n = len(texts)
    grades_c, teacher_c = _column(grades, n), _column(teacher, n)
    out = [0.0] * n
    todo = []
    pat = _REASON_RE if require_think else re.compile(r"^\s*(?:<think>.*?</think>\s*)?<answer>(.*?)</answer>\s*$", re.S)
    for i, t in enumerate(texts):
        m = pat.match(t)
        if not m:
            out[i] = -1.0
            continue
        ids = [int(x) for x in _BRACKET_ID_RE.findall(m.group(1))]
        w = len(grades_c[i])
        if len(ids) != w or len(set(ids)) != w or any(not 1 <= x <= w for x in ids):
            out[i] = 0.0
            continue
        todo.append((i, [x - 1 for x in ids]))
    measures = ranking_measures([o for _, o in todo], [grades_c[i] for i, _ in todo], rel=rel)
    for (i, order), (ndcg, rec) in zip(todo, measures):
        ref = [x - 1 for x in teacher_c[i]] if teacher_c[i] is not None else ideal_order(grades_c[i])
        out[i] = ndcg + 0.2 * rec + 0.1 * average_overlap(order, ref)
    return out


# --- Retro* intra + inter --------------------------------------------------------------------

_RETRO_RE = re.compile(r"<score>\s*(\d+)\s*</score>")


def parse_retro(text: str) -> int | None:
    m = _RETRO_RE.findall(text)
    if not m:
        return None
    s = int(m[-1])
    return s if 0 <= s <= 100 else None


def retro_reward(completions, qid, docid, label, assistant_prefix=None, positive_min: int = 1,
                 intra_weight: float = 0.75, inter_weight: float = 0.25, min_spread: float = 20.0,
                 **_) -> list[float]:
    """Retro*: R = 0.75 R_intra + 0.25 R_inter.

    Intra (rollouts of one (qid, docid)): when max |s_i - mean| >= 20, the rollout(s) closest to
    the mean get +1, the furthest -1, others 0 (all tied get it); a malformed rollout gets -1 and
    is left out of the mean [DEFAULT]. Inter (one query's positives vs negatives in the batch):
    R(y+_i) = mean_j 1[s+_i > s-_j], R(y-_j) = mean_i 1[s-_j < s+_i]; 0 when malformed or when the
    query has no opposite rollouts.
    """
    texts = _texts(completions, assistant_prefix)
    n = len(texts)
    qids, docids, labels = _column(qid, n), _column(docid, n), _column(label, n)
    scores = [parse_retro(t) for t in texts]
    intra = [-1.0 if s is None else 0.0 for s in scores]
    groups: dict = defaultdict(list)
    for i, s in enumerate(scores):
        if s is not None:
            groups[(qids[i], docids[i])].append(i)
    for idx in groups.values():
        mean = sum(scores[i] for i in idx) / len(idx)
        dev = {i: abs(scores[i] - mean) for i in idx}
        if max(dev.values()) < min_spread:
            continue
        lo, hi = min(dev.values()), max(dev.values())
        for i in idx:
            intra[i] = 1.0 if dev[i] == lo else (-1.0 if dev[i] == hi else 0.0)
    inter = [0.0] * n
    by_q: dict = defaultdict(lambda: ([], []))
    for i, s in enumerate(scores):
        if s is not None:
            by_q[qids[i]][0 if labels[i] >= positive_min else 1].append(i)
    for pos, neg in by_q.values():
        if not pos or not neg:
            continue
        for i in pos:
            inter[i] = sum(scores[i] > scores[j] for j in neg) / len(neg)
        for j in neg:
            inter[j] = sum(scores[j] < scores[i] for i in pos) / len(pos)
    return [intra_weight * a + inter_weight * b for a, b in zip(intra, inter)]


# --- Rank-R1 ---------------------------------------------------------------------------------

_RANKR1_RE = re.compile(r"^\s*<think>.*?</think>\s*<answer>\s*\[(\d+)\]\s*</answer>\s*$", re.S)


def parse_rankr1(text: str) -> int | None:
    m = _RANKR1_RE.match(text)
    return int(m.group(1)) if m else None


def rankr1_reward(completions, gold, assistant_prefix=None, **_) -> list[float]:
    """Rank-R1: 1 if the output is ``<think>..</think> <answer>[k]</answer>`` with k the gold label
    (an int, or a list of equally relevant labels), else 0."""
    texts = _texts(completions, assistant_prefix)
    golds = _column(gold, len(texts))
    out = []
    for t, g in zip(texts, golds):
        k = parse_rankr1(t)
        accepted = {int(x) for x in g} if isinstance(g, (list, tuple)) else {int(g)}
        out.append(1.0 if k is not None and k in accepted else 0.0)
    return out


# --- ProRank ---------------------------------------------------------------------------------


def prorank_reward(completions, label, assistant_prefix=None, positive_min: int = 1, **_) -> list[float]:
    """ProRank stage-1 warm-up: 1[output in {0, 1}] + 1[output = label] [DEFAULT]; the label is
    binarised as ``label >= positive_min``."""
    texts = _texts(completions, assistant_prefix)
    labels = _column(label, len(texts))
    out = []
    for t, lab in zip(texts, labels):
        s = t.strip()
        ok = s in ("0", "1")
        out.append(float(ok) + float(ok and int(s) == int(int(lab) >= positive_min)))
    return out


# --- registry and combination -----------------------------------------------------------------

REWARDS: dict[str, Callable[..., list[float]]] = {
    "erank": erank_reward,
    "grouprank": grouprank_reward,
    "reasonrank": reasonrank_reward,
    "retro": retro_reward,
    "rankr1": rankr1_reward,
    "prorank": prorank_reward,
}


def reward(name: str, **params) -> Callable[..., list[float]]:
    """The reward ``name`` with fixed keyword parameters (``rel=2``, ``positive_min=2``, ...)."""
    try:
        fn = REWARDS[name]
    except KeyError:
        raise UsageError(f"unknown reward {name!r}; known: {', '.join(REWARDS)}") from None
    if not params:
        return fn

    def bound(completions, **columns):
        return fn(completions, **{**columns, **params})

    bound.__name__ = f"{name}_reward"
    bound.__doc__ = fn.__doc__
    return bound


def build_rewards(spec: str | Sequence[str], **params) -> tuple[list[Callable], list[float]]:
    """``"reasonrank:1,rankr1:0.5"`` -> (functions, weights) for GRPOTrainer/GRPOConfig.reward_weights.
    ``params`` go to every reward that accepts them (by name in its signature)."""
    import inspect

    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not items:
        raise RankstackError("no reward named")
    funcs, weights = [], []
    for item in items:
        name, _, w = item.partition(":")
        fn = REWARDS.get(name.strip())
        if fn is None:
            raise UsageError(f"unknown reward {name!r}; known: {', '.join(REWARDS)}")
        accepted = set(inspect.signature(fn).parameters)
        funcs.append(reward(name.strip(), **{k: v for k, v in params.items() if k in accepted}))
        try:
            weights.append(float(w) if w else 1.0)
        except ValueError:
            raise RankstackError(f"reward weight must be a number: {item!r}") from None
    return funcs, weights


def combine(funcs: Sequence[Callable], weights: Sequence[float] | None = None) -> Callable[..., list[float]]:
    """One reward function: the weighted sum of several."""
    weights = list(weights) if weights is not None else [1.0] * len(funcs)
    if len(weights) != len(funcs):
        raise RankstackError("one weight per reward function")

    def combined(completions, **columns):
        total = None
        for f, w in zip(funcs, weights):
            vals = f(completions, **columns)
            total = [w * v for v in vals] if total is None else [a + w * v for a, v in zip(total, vals)]
        return total or []

    combined.__name__ = "+".join(getattr(f, "__name__", "reward") for f in funcs)
    return combined

