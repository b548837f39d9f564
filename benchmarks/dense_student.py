"""The dense MiniLM teacher fine-tuned on a distill run's listwise labels (sentence-transformers'
DistillKLDivLoss, its own trainer): does the synthetic data, not the student's architecture,
decide the students' DL19 score?

    python benchmarks/dense_student.py RUN/examples.jsonl OUT LR STUDENT_T [THREADS]
    python benchmarks/distill_ce.py --dataset dl19 --students RUN --dense-students OUT

``examples.jsonl``: a cross-encoder ``train distill`` run's rows (query, docs, teacher labels).
The model lands in ``OUT/model``; ``distill_ce.py --dense-students`` evaluates it.
"""
import json
import sys
import time
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss
from rankstack.models import ALIASES

src, out, lr, st = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
torch.set_num_threads(int(sys.argv[5]) if len(sys.argv) > 5 else 2)
rows = [json.loads(l) for l in open(src)]
n = min(len(r["docs"]) for r in rows)
cols = {"query": [r["query"] for r in rows]}
for i in range(n):
    cols[f"d{i}"] = [r["docs"][i] for r in rows]
cols["label"] = [r["labels"][:n] for r in rows]
ds = Dataset.from_dict(cols)
model = SentenceTransformer(ALIASES["minilm-l6"](), device="cpu")
model.max_seq_length = 128
loss = DistillKLDivLoss(model, student_temperature=st, teacher_temperature=1.0)
args = SentenceTransformerTrainingArguments(output_dir=out + "/ckpt", num_train_epochs=1, per_device_train_batch_size=4,
                                            learning_rate=lr, warmup_steps=0.1, logging_steps=20, save_strategy="no",
                                            report_to=[], seed=0, dataloader_drop_last=False)
t0 = time.perf_counter()
SentenceTransformerTrainer(model=model, args=args, train_dataset=ds, loss=loss).train()
print(f"trained in {time.perf_counter() - t0:.1f} s on {len(rows)} rows x {n} docs")
model.save(out + "/model")
