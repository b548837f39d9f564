"""The dense MiniLM teacher fine-tuned on a distill run's listwise labels, from its files
(``rankstack.training.dense_student``: sentence-transformers' DistillKLDivLoss and trainer): the
same student ``train distill --student-kind dense`` makes, at a learning rate and temperature
given here.

    python benchmarks/dense_student.py RUN/examples.jsonl OUT LR STUDENT_T [THREADS]
    python benchmarks/distill_ce.py --dataset dl19 --students RUN --dense-students OUT

``examples.jsonl``: a ``train distill`` run's ``listnet`` rows (query, docs, teacher labels).
The model lands in ``OUT/model``; ``distill_ce.py --dense-students`` evaluates it.
"""
import sys

import torch
from datasets import Dataset

from _common import command_line  # also sets the offline env defaults
from rankstack.training.dense_student import train_dense_student

src, out, lr, st = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
torch.set_num_threads(threads)
ds = Dataset.from_json(src)
res = train_dense_student(ds, model="minilm-l6", output_dir=out + "/model", learning_rate=lr,
                          student_temperature=st, batch_size=4, max_length=128, bf16=False)
with open(out + "/train.txt", "w") as f:
    f.write(f"trained by: {command_line()} ({len(ds)} rows of {src}, DistillKLDivLoss student T {st:g}, lr {lr:g}, "
            f"1 epoch, batch 4, {threads} threads): {res.seconds:.1f} s, {res.tokens} tokens\n")
