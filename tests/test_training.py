"""Example builders on DL19, and SFT / GRPO plumbing on a tiny real model (a few steps each)."""

import copy
from collections import Counter

import pytest

from rankstack.cli import main
from rankstack.training import examples as E
from rankstack.types import Doc, Query


@pytest.fixture(scope="module")
def tiny_dir(tiny_lm, tmp_path_factory):
    """The tiny model saved as a folder: a model spec like any other."""
    model, tok = tiny_lm
    d = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def split(dl19):
    return E.split_queries(dl19.judged_queries, 0.5, seed=0)


def test_split_is_seeded_and_disjoint(dl19, split):
    train, test = split
    assert not set(train) & set(test) and len(train) + len(test) == len(dl19.judged_queries)
    assert E.split_queries(dl19.judged_queries, 0.5, seed=0) == split
    assert E.split_queries(dl19.judged_queries, 0.5, seed=1) != split


def test_pointwise_examples_use_the_reranker_template(dl19, split):
    from rankstack.rerankers.pointwise import PointwiseReranker

    ds = E.pointwise_examples(dl19.queries, dl19.qrels, dl19.run, dl19.corpus, qids=split[0][:5], positive_min=2)
    kinds = Counter(ds["kind"])
    assert kinds["pos"] and kinds["hard"] and kinds["random"]
    for row in ds:
        assert row["completion"] == ("Yes" if row["label"] >= 2 else "No")
        assert row["qid"] in split[0][:5]
    row = ds[0]
    want = PointwiseReranker(None, method="yesno", cache=False).prompt(dl19.queries[row["qid"]],
                                                                         dl19.corpus.get(row["docid"]))
    assert E.prompt_from_row(row) == want
    hard = [r for r in ds if r["kind"] == "hard"]
    assert all(r["docid"] in dl19.run[r["qid"]].docids[:30] and r["label"] < 2 for r in hard)
    s10 = E.pointwise_examples(dl19.queries, dl19.qrels, dl19.run, dl19.corpus, qids=split[0][:2], method="score10")
    assert {r["completion"] for r in s10} <= {f"{s}</answer>" for s in (0, 3, 7, 10)}
    assert s10[0]["assistant_prefix"].endswith("<answer>")


def test_first_window_targets_are_ideal_permutations(dl19, split):
    ds = E.first_examples(dl19.queries, dl19.qrels, dl19.run, dl19.corpus, qids=split[0][:3], window=5, step=5,
                          depth=20)
    for row in ds:
        g = row["grades"]
        order = [ord(c) - ord("A") for c in row["completion"] if c.isalpha()]
        assert sorted(order) == list(range(5))
        assert [g[j] for j in order] == sorted(g, reverse=True)
        for a, b in zip(order, order[1:]):  # ties keep first-stage order
            assert g[a] > g[b] or a < b
        assert "[A]" in row["prompt"][-1]["content"] and row["teacher"] == [j + 1 for j in order]
    lw = E.listwise_examples(dl19.queries, dl19.qrels, dl19.run, dl19.corpus, qids=split[0][:2], window=4, step=4,
                             depth=8, prompt="reasonrank")
    assert lw[0]["completion"].startswith("<think>") and "[1]" in lw[0]["prompt"][-1]["content"]


def test_examples_bad_input(dl19):
    from rankstack.errors import RankstackError

    with pytest.raises(RankstackError):
        E.pointwise_examples(dl19.queries, dl19.qrels, dl19.run, dl19.corpus, qids=["nope"])
    with pytest.raises(RankstackError):
        E.split_queries(["a", "b"], 1.5)


def test_sft_then_load_reranker(tiny_lm, tiny_dir, dl19, split, tmp_path):
    """The saved folder holds the trained weights: its reranker's yes/no scores equal log p(yes) - log p(no)
    computed with plain transformers from that folder, and differ from the untrained model's."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from rankstack.rerankers.registry import load_reranker
    from rankstack.training.sft import train_sft

    model, tok = tiny_lm
    ds = E.pointwise_examples(dl19.queries, dl19.qrels, dl19.run, dl19.corpus, qids=split[0][:2], n_pos=1,
                              n_hard=1, n_random=1)
    res = train_sft(ds, model=(copy.deepcopy(model), tok), output_dir=tmp_path / "sft", max_steps=2, batch_size=2,
                    max_length=128, use_cpu=True, bf16=False, learning_rate=1e-3)
    assert len(res.losses()) == 2 and all(x > 0 for x in res.losses())
    assert (tmp_path / "sft" / "config.json").exists() and not (tmp_path / "sft" / "adapter_config.json").exists()
    docs = ["fleas are insects", "cars have wheels"]
    opts = dict(cache=False, progress=False, backend_options={"dtype": "float32"})
    rr = load_reranker("pointwise", model=str(tmp_path / "sft"), **opts)
    got = rr.rerank("what is a flea", docs).scores()
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "sft", dtype=torch.float32).eval()
    yes = [rr.backend.token_id(f) for f in rr.yes_forms]
    no = [rr.backend.token_id(f) for f in rr.no_forms]
    for i, text in enumerate(docs):
        ids = torch.tensor([rr.backend.encode(rr.prompt(Query("q", "what is a flea"), Doc(str(i), text)))])
        with torch.inference_mode():
            lp = torch.log_softmax(saved(input_ids=ids).logits[0, -1].double(), -1)
        want = float(torch.logsumexp(lp[yes], 0) - torch.logsumexp(lp[no], 0))
        assert got[str(i)] == pytest.approx(want, abs=1e-4)
    base = load_reranker("pointwise", model=str(tiny_dir), **opts).rerank("what is a flea", docs).scores()
    assert np.abs(np.array([got[k] - base[k] for k in got])).max() > 1e-3  # trained, not the base


def test_sft_first_loss_option(tiny_lm, dl19, split, tmp_path):
    from rankstack.training.sft import train_sft

    model, tok = tiny_lm
    ds = E.first_examples(dl19.queries, dl19.qrels, dl19.run, dl19.corpus, qids=split[0][:1], window=2, step=2,
                          depth=6)
    res = train_sft(ds, model=(copy.deepcopy(model), tok), output_dir=tmp_path / "first", loss="first", max_steps=2,
                    batch_size=2, max_length=1024, use_cpu=True, bf16=False, save_model=False)
    assert len(res.losses()) == 2
    assert all("rank_loss" in h and "lm_loss" in h for h in res.log_history if "loss" in h)


def test_grpo_steps_then_adapter_loads(tiny_dir, tiny_lm, tmp_path):
    """Constructed so every reward is known: generation is one forced end-of-sequence token (empty
    completions), so a row's reward is that of its assistant prefix alone. Row 0's prefix is a whole
    Rank-R1 answer with its gold label (reward 1), row 1's names the wrong label, rows 2-3 stop inside
    the answer (reward 0). The reward must see each completion beside its own row's prefix and gold, and
    the logged curve must be the mean of what it returned at each step."""
    from datasets import Dataset

    from rankstack.rerankers.backends.base import Prompt
    from rankstack.rerankers.registry import load_reranker
    from rankstack.training.grpo import reward_curve, train_grpo
    from rankstack.training.rewards import rankr1_reward

    prefixes = ["<think> </think> <answer>[1]</answer>"] * 2 + ["<think> </think> <answer>["] * 2
    golds = [[1], [2], [1], [2]]
    want = [1.0, 0.0, 0.0, 0.0]
    rows = [{"prompt": Prompt.chat(f"Which is relevant to query {i}? [1] a [2] b").as_dicts(),
             "assistant_prefix": prefixes[i], "gold": golds[i], "qid": str(i)} for i in range(4)]
    seen = []

    def recording_reward(completions, gold, assistant_prefix, qid, **kw):
        out = rankr1_reward(completions, gold, assistant_prefix=assistant_prefix)
        seen.append(list(zip(qid, gold, assistant_prefix, completions, out)))
        return out

    eos = tiny_lm[1].eos_token_id
    res = train_grpo(Dataset.from_list(rows), model=str(tiny_dir), output_dir=tmp_path / "grpo",
                     rewards=[recording_reward], num_generations=2, max_completion_length=1, max_steps=2,
                     use_cpu=True, bf16=False, merge=False, generation_kwargs={"forced_eos_token_id": eos})
    assert len(seen) == 2 and [len(step) for step in seen] == [4, 4]
    for step in seen:
        for q, gold, prefix, completion, r in step:
            i = int(q)
            text = completion if isinstance(completion, str) else completion[-1]["content"]
            assert (prefix, list(gold), text, r) == (prefixes[i], golds[i], "", want[i])
    assert reward_curve(res) == pytest.approx([sum(x[-1] for x in step) / 4 for step in seen])
    assert (tmp_path / "grpo" / "adapter_config.json").exists()
    # equal rewards within each prompt's group -> zero advantages -> LoRA's B stays 0: adapter == base model
    kw = dict(cache=False, progress=False, backend_options={"dtype": "float32"})
    adapter = load_reranker("pointwise", model=str(tmp_path / "grpo"), **kw).rerank("q", ["a", "b", "c"]).scores()
    base = load_reranker("pointwise", model=str(tiny_dir), **kw).rerank("q", ["a", "b", "c"]).scores()
    assert adapter == pytest.approx(base, abs=1e-5)


def test_targets_are_the_rewards_optimum_and_parse(dl19, split):
    """Each builder's target gets the best value of its paradigm's reward, and the reranker's own
    parser reads it back (training targets and inference parsing agree)."""
    from rankstack.rerankers.groupwise import parse_group_scores
    from rankstack.rerankers.parsing import parse_permutation
    from rankstack.rerankers.rubric import parse_rubric_score
    from rankstack.rerankers.setwise import parse_setwise_answer
    from rankstack.training import rewards as R

    args = (dl19.queries, dl19.qrels, dl19.run, dl19.corpus)
    q = split[0][:2]

    def cols(d):
        return {c: d[c] for c in d.column_names if c not in ("prompt", "completion")}

    sw = E.setwise_examples(*args, qids=q, size=4, n_sets=2)
    assert R.rankr1_reward(sw["completion"], **cols(sw)) == [1.0] * len(sw)
    assert all(parse_setwise_answer(r["completion"], 4) == (r["gold"][0] - 1, "ok") for r in sw)
    swd = E.setwise_examples(*args, qids=q, size=4, n_sets=2, reasoning=False)  # prefix opens "<answer>["
    assert all(r["completion"] == f"{r['gold'][0]}]</answer>" for r in swd)
    assert R.rankr1_reward(swd["completion"], **cols(swd)) == [1.0] * len(swd)
    assert all(parse_setwise_answer(r["assistant_prefix"] + r["completion"], 4)[0] == r["gold"][0] - 1 for r in swd)
    gw = E.groupwise_examples(*args, qids=q, size=4, n_groups=2)
    assert R.grouprank_reward(gw["completion"], **cols(gw)) == pytest.approx([1.3] * len(gw))
    for r in gw:
        scores, status = parse_group_scores(r["completion"], 4)
        assert [round(s * 10) for s in scores] == r["gold_scores"]
    lw = E.listwise_examples(*args, qids=q, window=5, step=5, depth=10, prompt="reasonrank")
    assert R.reasonrank_reward(lw["completion"], **cols(lw)) == pytest.approx([1.3] * len(lw))
    assert all(parse_permutation(r["completion"], 5).order == [t - 1 for t in r["teacher"]] for r in lw)
    rb = E.rubric_examples(*args, qids=q, n_pos=1, n_hard=1, n_random=0)
    assert all(parse_rubric_score(r["completion"])[0] == r["teacher_score"] for r in rb)


def test_cli_train_sft_and_grpo(tiny_dir, tmp_path, capsys):
    common = ["--dataset", "dl19", "--model", str(tiny_dir), "--train-fraction", "0.1", "--n-pos", "1",
              "--n-hard", "1", "--n-random", "0", "--max-steps", "1", "--batch-size", "2", "--cpu"]
    assert main(["train", "sft", "--paradigm", "pointwise", "-o", str(tmp_path / "sft"), "--max-length", "256",
                 *common]) == 0
    out = capsys.readouterr().out
    assert "held out" in out and "loss per logged step" in out and (tmp_path / "sft" / "config.json").exists()
    assert main(["train", "grpo", "--paradigm", "pointwise", "--method", "prorank", "--reward", "prorank",
                 "--num-generations", "2", "--max-completion-length", "2", "-o", str(tmp_path / "grpo"),
                 *common]) == 0
    assert "reward_curve" in capsys.readouterr().out


def test_cli_train_errors(capsys, tmp_path):
    assert main(["train", "grpo", "--dataset", "dl19", "--reward", "nope", "-o", str(tmp_path / "x"),
                 "--model", "/nonexistent/model"]) == 2
    assert "unknown reward 'nope'" in capsys.readouterr().err
    assert main(["train", "sft", "-o", str(tmp_path / "y")]) == 2  # no data named
    assert "--queries is required" in capsys.readouterr().err
