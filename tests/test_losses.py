"""Ranking losses on hand-computed values, and FIRST's combined loss on a tiny real model."""

import math

import pytest
import torch

from rankstack.training.losses import FirstLoss, lambdarank_loss, listnet_loss, ranknet_loss


def test_ranknet_hand_values():
    s = torch.tensor([[2.0, 0.0]])
    r = torch.tensor([[1, 2]])
    assert float(ranknet_loss(s, ranks=r)) == pytest.approx(math.log1p(math.exp(-2)))
    assert float(ranknet_loss(s, ranks=r, weighting="first")) == pytest.approx(math.log1p(math.exp(-2)) / 3)
    # three items, FIRST weights 1/3, 1/4, 1/5 over pairs (1,2), (1,3), (2,3); mean over 3 pairs
    s3 = torch.tensor([0.0, 0.0, 0.0])
    val = float(ranknet_loss(s3, ranks=torch.tensor([1, 2, 3]), weighting="first"))
    assert val == pytest.approx(math.log(2) * (1 / 3 + 1 / 4 + 1 / 5) / 3)
    # masked entries and tied labels make no pairs
    assert float(ranknet_loss(torch.tensor([[1.0, 5.0]]), labels=torch.tensor([[1, 1]]))) == 0.0
    m = torch.tensor([[True, False, True]])
    assert float(ranknet_loss(torch.tensor([[3.0, 9.0, 1.0]]), labels=torch.tensor([[2, 5, 0]]), mask=m)) == \
        pytest.approx(math.log1p(math.exp(-2)))


def test_listnet_and_lambdarank_hand_values():
    assert float(listnet_loss(torch.tensor([0.0, 0.0]), labels=torch.tensor([1.0, 0.0]))) == pytest.approx(math.log(2))
    # two items in the wrong order: |dNDCG| = |1 - 0| * |1/log2(3) - 1| / 1
    delta = 1 - 1 / math.log2(3)
    val = float(lambdarank_loss(torch.tensor([0.0, 1.0]), labels=torch.tensor([1.0, 0.0])))
    assert val == pytest.approx(delta * math.log1p(math.e))


@pytest.mark.parametrize("loss", ["ranknet", "listnet", "lambdarank"])
def test_losses_learn_the_gold_order(loss):
    fn = {"ranknet": lambda s, r: ranknet_loss(s, ranks=r, weighting="first"),
          "listnet": lambda s, r: listnet_loss(s, ranks=r), "lambdarank": lambda s, r: lambdarank_loss(s, ranks=r)}[loss]
    torch.manual_seed(0)
    ranks = torch.stack([torch.randperm(6) + 1 for _ in range(4)])
    s = torch.randn(4, 6, requires_grad=True)
    opt = torch.optim.Adam([s], lr=0.2)
    first = float(fn(s, ranks).detach())
    for _ in range(150):
        opt.zero_grad()
        fn(s, ranks).backward()
        opt.step()
    assert float(fn(s, ranks).detach()) < first
    got, want = s.detach().argsort(-1, descending=True), ranks.argsort(-1)
    if loss == "lambdarank":  # |dNDCG| weights of low positions are tiny: the head is what it fixes
        got, want = got[:, :2], want[:, :2]
    assert torch.equal(got, want)


def test_first_loss_reads_targets_and_trains(tiny_lm):
    model, tok = tiny_lm
    model = type(model)(model.config)  # a fresh copy: the fixture is shared
    prompt = tok.apply_chat_template([{"role": "user", "content": "Rank [A] cats [B] dogs [C] cars for: dogs"}],
                                     tokenize=False, add_generation_prompt=True) + "["
    target = "B] > [A] > [C]" + tok.eos_token
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    t_ids = tok(target, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + t_ids])
    labels = torch.tensor([[-100] * len(p_ids) + t_ids])
    loss = FirstLoss(tok)
    pos, order = loss.targets(labels[0, 1:])
    assert pos == len(p_ids) - 1 and order == [1, 0, 2]
    off = loss.keep_from(labels)
    assert off == len(p_ids) - 1
    with torch.no_grad():  # logits of the completion only give the same loss as the full logits
        full = loss(model(input_ids=ids), labels)
        part = loss(model(input_ids=ids, logits_to_keep=ids.shape[1] - off), labels, offset=off)
    assert float(full) == pytest.approx(float(part), rel=1e-5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    values = []
    for _ in range(6):
        opt.zero_grad()
        out = model(input_ids=ids)
        total = loss(out, labels)
        total.backward()
        opt.step()
        values.append((float(total), loss.last["lm_loss"], loss.last["rank_loss"]))
    assert values[-1][0] < values[0][0] and values[-1][2] < values[0][2]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, pos]
    letters = [logits[t].item() for t in loss.letters[:3]]
    assert sorted(range(3), key=lambda j: -letters[j]) == [1, 0, 2]
