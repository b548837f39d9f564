"""Ranking losses over score tensors, and FIRST's combined LM + ranking objective.

Scores are ``(batch, n)`` tensors (one row per query or window); ``mask`` (same shape, bool)
marks real entries in padded rows. Gold comes either as ``ranks`` (1-based, 1 = best, as in a
target permutation) or as ``labels`` (graded relevance, higher = better).

- :func:`ranknet_loss` — RankNet over the pairs i better than j: ``w_ij * log(1 + exp(-(s_i - s_j)))``,
  mean over pairs; ``weighting="first"`` uses FIRST's ``w_ij = 1 / (r_i + r_j)``.
- :func:`listnet_loss` — cross-entropy between softmax(gold) and softmax(scores).
- :func:`lambdarank_loss` — RankNet with each pair weighted by |delta nDCG| of swapping it in the
  current order.
- :func:`orthogonality_loss` — MVP's view diversity term: mean squared cosine between different
  view embeddings of the same candidate.
- :class:`FirstLoss` — ``L = L_LM + 10 * L_rank``: the LM loss on the target tokens plus a ranking
  loss on the identifier-letter logits at the position that predicts the first identifier. A
  ``compute_loss_func`` for TRL's ``SFTTrainer``: it needs nothing but the labels, reading the
  gold order from the target letters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rankstack.errors import RankstackError


def _prep(scores, ranks=None, labels=None, mask=None):
    if (ranks is None) == (labels is None):
        raise RankstackError("give exactly one of ranks (1 = best) or labels (higher = better)")
    scores = scores if scores.dim() == 2 else scores.unsqueeze(0)
    gold = (-ranks.float() if ranks is not None else labels.float())
    gold = gold if gold.dim() == 2 else gold.unsqueeze(0)
    if gold.shape != scores.shape:
        raise RankstackError(f"gold shape {tuple(gold.shape)} != scores shape {tuple(scores.shape)}")
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    mask = mask if mask.dim() == 2 else mask.unsqueeze(0)
    return scores, gold.to(scores.device), mask.to(scores.device).bool()


def _pairs(gold, mask):
    """(b, n, n) bool: i strictly better than j, both real."""
    return (gold[:, :, None] > gold[:, None, :]) & mask[:, :, None] & mask[:, None, :]


def ranknet_loss(scores, ranks=None, labels=None, mask=None, weighting: str = "none", pair_weights=None):
    """Weighted RankNet, mean over the pairs (i better than j) of ``w_ij * softplus(s_j - s_i)``.

    ``weighting``: ``"none"`` (w = 1) or ``"first"`` (w = 1 / (r_i + r_j), needs ``ranks``).
    ``pair_weights`` (b, n, n) overrides both (LambdaRank passes |delta nDCG|).
    """
    scores, gold, mask = _prep(scores, ranks, labels, mask)
    pairs = _pairs(gold, mask)
    if pair_weights is not None:
        w = pair_weights
    elif weighting == "first":
        if ranks is None:
            raise RankstackError("FIRST weighting needs ranks")
        r = -gold
        w = 1.0 / (r[:, :, None] + r[:, None, :])
    elif weighting == "none":
        w = torch.ones_like(scores)[:, :, None].expand(-1, -1, scores.shape[1])
    else:
        raise RankstackError(f"unknown weighting {weighting!r}; 'none' or 'first'")
    diff = scores[:, :, None] - scores[:, None, :]
    per_pair = w * F.softplus(-diff)
    n_pairs = pairs.sum()
    if n_pairs == 0:
        return scores.sum() * 0.0
    return per_pair[pairs].sum() / n_pairs


def listnet_loss(scores, ranks=None, labels=None, mask=None, temperature: float = 1.0):
    """ListNet (top-one): cross-entropy of softmax(scores) against softmax(gold / T); ranks
    become gold 1/r [DEFAULT]. Mean over rows."""
    if ranks is not None:
        ranks = ranks if ranks.dim() == 2 else ranks.unsqueeze(0)
        labels, ranks = 1.0 / ranks.float().clamp(min=1), None
    scores, gold, mask = _prep(scores, ranks, labels, mask)
    neg = torch.finfo(scores.dtype).min
    target = torch.softmax((gold / temperature).masked_fill(~mask, neg), dim=-1)
    logp = torch.log_softmax(scores.masked_fill(~mask, neg), dim=-1)
    return -(target * logp.masked_fill(~mask, 0.0)).sum(-1).mean()


def lambdarank_loss(scores, ranks=None, labels=None, mask=None, k: int | None = None):
    """LambdaRank: RankNet pairs weighted by |delta nDCG(@k)| of swapping i and j in the order the
    current scores give (gains 2^g - 1; ranks become gains n - r [DEFAULT])."""
    if ranks is not None:
        r = ranks if ranks.dim() == 2 else ranks.unsqueeze(0)
        labels, ranks = (r.shape[1] - r.float()).clamp(min=0), None
    scores, gold, mask = _prep(scores, ranks, labels, mask)
    with torch.no_grad():
        gain = (2.0 ** gold - 1.0) * mask
        neg = torch.finfo(scores.dtype).min
        order = scores.detach().masked_fill(~mask, neg).argsort(dim=-1, descending=True)
        pos = torch.empty_like(order)
        pos.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order))
        disc = 1.0 / torch.log2(pos.float() + 2.0)
        if k is not None:
            disc = disc * (pos < k)
        ideal = torch.sort(gain, dim=-1, descending=True).values
        idisc = 1.0 / torch.log2(torch.arange(scores.shape[1], device=scores.device).float() + 2.0)
        if k is not None:
            idisc = idisc * (torch.arange(scores.shape[1], device=scores.device) < k)
        idcg = (ideal * idisc).sum(-1, keepdim=True).clamp(min=1e-10)
        delta = (gain[:, :, None] - gain[:, None, :]).abs() * (disc[:, :, None] - disc[:, None, :]).abs() / idcg[:, :, None]
    return ranknet_loss(scores, labels=gold, mask=mask, pair_weights=delta)


def orthogonality_loss(views, mask=None):
    """MVP's orthogonality loss: the mean over candidates of the squared cosine similarity between
    each pair of different view embeddings of the candidate (0 when its views are orthogonal).
    ``views`` (..., m, d), e.g. (B, n, m, d); ``mask`` (B, n) selects the real candidates."""
    v = F.normalize(views.float(), dim=-1)
    m = v.shape[-2]
    if m < 2:
        return v.sum() * 0.0
    gram = v @ v.transpose(-1, -2)
    off = gram - torch.eye(m, device=v.device)
    per = off.pow(2).sum((-1, -2)) / (m * (m - 1))
    if mask is not None:
        per = per[mask.bool()]
    return per.mean() if per.numel() else v.sum() * 0.0


RANK_LOSSES = {"ranknet": ranknet_loss, "listnet": listnet_loss, "lambdarank": lambdarank_loss}
#: rank_llm's weights for FIRST: RankNet x10, ListNet x0.1, LambdaRank x1
DEFAULT_RANK_WEIGHTS = {"ranknet": 10.0, "listnet": 0.1, "lambdarank": 1.0}


def letter_token_ids(tokenizer, n: int = 20) -> list[int]:
    """Token ids of the single-character identifiers 'A', 'B', ... (no-space variant)."""
    ids = []
    for j in range(n):
        letter = chr(ord("A") + j)
        tid = tokenizer.convert_tokens_to_ids(letter)
        if tid is None or tid == tokenizer.unk_token_id:
            raise RankstackError(f"identifier {letter!r} is not a single token of this tokenizer")
        ids.append(tid)
    return ids


class FirstLoss:
    """FIRST's combined objective ``L_LM + rank_weight * L_rank`` as TRL's ``compute_loss_func``.

    From each row's labels (target tokens; -100 elsewhere) it reads the identifier letters in
    target order (a letter token that opens the completion or follows a token ending in ``[``),
    giving gold ranks r_j; the scores s_j are the logits of the letter tokens at the position
    that predicts the first identifier. ``rank_loss``: ``ranknet`` (FIRST weighting, x10),
    ``listnet`` (x0.1) or ``lambdarank`` (x1); ``rank_weight`` defaults to those.
    """

    def __init__(self, tokenizer, rank_weight: float | None = None, rank_loss: str = "ranknet", max_ids: int = 20):
        if rank_loss not in RANK_LOSSES:
            raise RankstackError(f"unknown rank loss {rank_loss!r}; one of {', '.join(RANK_LOSSES)}")
        self.rank_loss = rank_loss
        self.rank_weight = DEFAULT_RANK_WEIGHTS[rank_loss] if rank_weight is None else float(rank_weight)
        self.letters = letter_token_ids(tokenizer, max_ids)
        self._letter_index = {t: j for j, t in enumerate(self.letters)}
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self._opens = {i for i, t in enumerate(vocab) if t is not None and t.endswith("[")}
        self.last = {}

    def targets(self, target_row) -> tuple[int, list[int]] | None:
        """From one row of next-token targets (``targets[t]`` is what ``pred[t]`` predicts; -100 off
        the completion): (index of the prediction of the first identifier, letters in target order)."""
        idx = (target_row != -100).nonzero().flatten().tolist()
        if not idx:
            return None
        toks = target_row.tolist()
        first, order = None, []
        for k, p in enumerate(idx):
            t = toks[p]
            if t in self._letter_index and (k == 0 or toks[idx[k - 1]] in self._opens):
                j = self._letter_index[t]
                if j in order:
                    continue
                if first is None:
                    first = p
                order.append(j)
        if first is None or len(order) < 2:
            return None
        return first, order

    def rank_scores(self, pred, targets):
        """(scores (b, n), ranks (b, n), mask (b, n)) for the rows with a permutation target."""
        rows, n = [], 0
        for b in range(targets.shape[0]):
            t = self.targets(targets[b])
            if t is not None:
                rows.append((b, *t))
                n = max(n, max(t[1]) + 1)
        if not rows:
            return None
        letter_ids = torch.tensor(self.letters[:n], device=pred.device)
        scores = torch.stack([pred[b, p].float().index_select(0, letter_ids) for b, p, _ in rows])
        ranks = torch.full((len(rows), n), float(n + 1), device=pred.device)
        mask = torch.zeros((len(rows), n), dtype=torch.bool, device=pred.device)
        for i, (_, _, order) in enumerate(rows):
            for r, j in enumerate(order):
                ranks[i, j] = r + 1
                mask[i, j] = True
        return scores, ranks, mask

    @staticmethod
    def keep_from(labels) -> int:
        """The first position whose logits the loss needs (one before the earliest target token):
        pass ``logits_to_keep=labels.shape[1] - keep_from(labels)`` to the model and ``offset=`` here,
        so the output layer runs on the completion only (prompts are long, targets short)."""
        has = (labels != -100).any(0).nonzero().flatten()
        return max(0, int(has[0]) - 1) if len(has) else 0

    def __call__(self, outputs, labels, num_items_in_batch=None, offset: int = 0):
        """``outputs.logits`` cover positions ``offset..`` of the sequence (all of it by default)."""
        logits = outputs.logits if hasattr(outputs, "logits") else outputs["logits"]
        if logits.shape[1] != labels.shape[1] - offset:
            raise RankstackError(f"logits cover {logits.shape[1]} positions, labels {labels.shape[1]} - offset {offset}")
        pred = logits[:, :-1]
        targets = labels[:, offset + 1:].to(logits.device)
        nll = F.cross_entropy(pred.float().reshape(-1, pred.shape[-1]), targets.reshape(-1),
                              ignore_index=-100, reduction="sum")
        n_tok = num_items_in_batch if num_items_in_batch is not None else (targets != -100).sum()
        lm = nll / torch.as_tensor(n_tok, device=nll.device).clamp(min=1)
        got = self.rank_scores(pred, targets)
        if got is None:
            rank = lm * 0.0
        else:
            scores, ranks, mask = got
            if self.rank_loss == "ranknet":
                rank = ranknet_loss(scores, ranks=ranks, mask=mask, weighting="first")
            else:
                rank = RANK_LOSSES[self.rank_loss](scores, ranks=ranks, mask=mask)
        self.last = {"lm_loss": float(lm.detach()), "rank_loss": float(rank.detach())}
        return lm + self.rank_weight * rank
