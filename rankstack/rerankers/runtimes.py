"""CPU runtimes for the encoder rerankers (dense, cross-encoder, MVP): ``engine=`` picks one.

    rr = load_reranker("dense", model="minilm-l6", engine="onnx-int8")
    rankstack rerank --reranker dense --backend-option engine=onnx-int8 ...

Engines: ``torch`` (default, fp32), ``torch-bf16`` (weights in bf16: fast only on CPUs with
avx512_bf16/amx), ``onnx`` (ONNX Runtime, fp32), ``onnx-int8`` (ONNX Runtime, dynamic int8
quantization of the weights, activations quantized per batch), ``openvino`` (OpenVINO, fp32) and
``openvino-int8`` (OpenVINO, static int8 quantization by NNCF calibrated on fixed texts).

Only the transformer inside the reranker changes: the reranker keeps its own tokenizer,
pooling and scoring (sentence-transformers' modules, MVP's anchor module), and the transformer
is replaced by an :class:`ExportedModel` that takes the same tensors and returns the same
outputs from ONNX Runtime or OpenVINO.

**Why not sentence-transformers' ``backend="onnx"``.** Its ONNX and OpenVINO backends and its
``export_dynamic_quantized_onnx_model`` / ``export_static_quantized_openvino_model`` helpers go
through optimum (``optimum-onnx`` / ``optimum-intel``), and every release of those pins
transformers < 4.58 (and optimum-intel pulls another torch): installing them would downgrade
the project's transformers 5 and torch. So the export is torch's own ONNX exporter
(``torch.onnx.export(dynamo=True)``), the int8 step ONNX Runtime's ``quantize_dynamic`` (what
optimum's ``ORTQuantizer`` calls) and NNCF's ``quantize`` (what optimum-intel calls), the
runtimes ONNX Runtime and OpenVINO themselves: the ``cpu`` extra.

**Exported once.** Each export lands under ``$RANKSTACK_CACHE/exports/<model>-<digest>/<engine>-<cpu>``:
the digest is of every weight (a fine-tuned model or a re-initialised head never reuses another's
export), ``<cpu>`` a digest of the CPU's vector/int8 flags and the runtime's version (int8 kernels
and their saturation behaviour depend on VNNI / AVX-512: the quantization settings follow the CPU,
so an export made on one CPU kind is never reused on another). The next load reads the file.

**Checked on load.** The reranker scores a few fixed (query, passage) pairs with torch and with the
engine; the largest difference, relative to the spread of the torch scores, must stay under
``engine_tolerance`` (default 0.02 for fp32 engines, 0.15 for int8). Past it ``engine_check="refuse"``
(default) raises, ``"warn"`` logs and goes on, ``"off"`` skips the check. The measured
difference is kept in ``reranker.engine_report``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rankstack.errors import RankstackError

log = logging.getLogger(__name__)

ENGINES = ("torch", "torch-bf16", "onnx", "onnx-int8", "openvino", "openvino-int8")
EXTRA = "pip install 'rankstack[cpu]'"
#: relative tolerance on the check pairs: |engine - torch| / spread of the torch scores
DEFAULT_TOLERANCE = {"torch-bf16": 0.1, "onnx": 0.02, "openvino": 0.02, "onnx-int8": 0.15, "openvino-int8": 0.15}
#: fixed pairs every engine is checked on (and the int8 OpenVINO model is calibrated on)
CHECK_PAIRS = (
    ("what is a lobster roll", "A lobster roll is a sandwich of lobster meat served on a grilled hot dog bun."),
    ("what is a lobster roll", "The stock market fell sharply on Monday after the central bank raised rates."),
    ("how do vaccines work", "Vaccines train the immune system to recognise a pathogen without causing the disease."),
    ("how do vaccines work", "The recipe calls for two cups of flour, one egg and a pinch of salt."),
    ("causes of the french revolution", "Financial crisis, food shortages and Enlightenment ideas led to the revolution "
                                        "of 1789 in France."),
    ("causes of the french revolution", "Photosynthesis converts light energy into chemical energy stored in glucose."),
    ("symptoms of dehydration", "Thirst, dark urine, fatigue and dizziness are common signs that the body lacks water."),
    ("symptoms of dehydration", "The bridge was completed in 1937 and spans the Golden Gate strait."),
    ("what does a cpu cache do", "A CPU cache keeps recently used memory close to the cores so that loads are fast."),
    ("what does a cpu cache do", "Tulips bloom in spring and come in many colours."),
    ("who wrote pride and prejudice", "Pride and Prejudice is an 1813 novel by Jane Austen."),
    ("who wrote pride and prejudice", "Mount Everest is the highest mountain above sea level."),
)
#: bump when an export's recipe changes (opset, quantization settings): old exports are then not reused
EXPORT_VERSION = 2
_CPU_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16", "asimd",
              "asimddp", "i8mm")


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise RankstackError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)} (the onnx and openvino ones "
                             f"need the cpu extra: {EXTRA})")
    need = "onnxruntime" if engine.startswith("onnx") else "openvino" if engine.startswith("openvino") else None
    if need:
        extra_mods = [need, "onnx", "onnxscript"] + (["nncf"] if engine == "openvino-int8" else [])
        missing = [m for m in extra_mods if importlib.util.find_spec(m) is None]
        if missing:
            raise RankstackError(f"engine {engine!r} needs {', '.join(missing)}, which is not installed: {EXTRA}")
    return engine


def cpu_key(engine: str) -> str:
    """What an int8 export depends on besides the weights: the CPU's int8/vector flags and the runtime's version."""
    from rankstack.hardware import cpu_flags

    flags = sorted(f for f in _CPU_FLAGS if f in cpu_flags())
    runtime = "onnxruntime" if engine.startswith("onnx") else "openvino"
    version = importlib.import_module(runtime).__version__
    return hashlib.sha1(json.dumps([flags, runtime, version, EXPORT_VERSION]).encode()).hexdigest()[:10]


def full_digest(module: torch.nn.Module) -> str:
    """A digest of every parameter of ``module`` (all values): the export cache key."""
    h = hashlib.sha1()
    for name, p in module.state_dict().items():
        h.update(name.encode())
        h.update(p.detach().contiguous().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def export_dir(model: torch.nn.Module, name: str, engine: str) -> Path:
    from rankstack.paths import cache_root

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(str(name)).name)[:40] or "model"
    return cache_root() / "exports" / f"{safe}-{full_digest(model)}" / f"{engine}-{cpu_key(engine)}"


class _Inputs(torch.nn.Module):
    """The exported function: keyword-free tensors in, one tensor out (last hidden state or logits)."""

    def __init__(self, model, names, output):
        super().__init__()
        self.model, self.names, self.output = model, names, output

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return getattr(self.model(**{n: given[n] for n in self.names}), self.output)


def input_names(model) -> list[str]:
    import inspect

    params = inspect.signature(model.forward).parameters
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in params]


def export_onnx(model, path: Path, output: str) -> Path:
    """torch's ONNX exporter (dynamo), batch and sequence dynamic."""
    names = input_names(model)
    ids = torch.tensor([[101, 2054, 2003, 1037, 102, 0], [101, 2129, 2079, 2017, 2079, 102]])
    example = {"input_ids": ids, "attention_mask": (ids != 0).long(), "token_type_ids": torch.zeros_like(ids)}
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("sequence", min=1)
    dyn = {n: {0: batch, 1: seq} for n in names}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    log.info("exporting %s to ONNX (once) -> %s", type(model).__name__, path)
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(_Inputs(model, names, output).eval(), tuple(example[n] for n in names), str(tmp),
                          input_names=names, output_names=[output], dynamic_shapes=dyn, dynamo=True,
                          external_data=False, verbose=False)
    tmp.replace(path)
    return path


def _vnni() -> bool:
    from rankstack.hardware import cpu_flags

    return bool({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & cpu_flags())


def quantize_onnx(src: Path, dst: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantization of the MatMuls (int8 weights per channel, uint8 activations
    per batch; the embedding tables stay fp32: quantizing them saves no time and costs agreement).
    Without VNNI the u8s8 kernels (VPMADDUBSW) can saturate: weights then use 7 bits (``reduce_range``),
    as ONNX Runtime's documentation advises and optimum's ``avx2`` configuration does."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=True, reduce_range=not _vnni(),
                     op_types_to_quantize=["MatMul"])
    tmp.replace(dst)
    return dst


def _ov_int8(model_path: Path, dst: Path, calibration: list[dict]) -> Path:
    import nncf
    import openvino as ov

    core = ov.Core()
    ov_model = core.read_model(str(model_path))
    q = nncf.quantize(ov_model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                      subset_size=len(calibration))
    ov.save_model(q, str(dst))
    return dst


class ExportedModel(torch.nn.Module):
    """Stands in for a transformers encoder: same keyword tensors in, a ``ModelOutput`` with the
    same field out, computed by ONNX Runtime or OpenVINO. Holds the original's ``config``."""

    def __init__(self, config, run: Callable[[dict], np.ndarray], names: list[str], output: str, engine: str):
        super().__init__()
        self.config, self.run, self.names, self.output, self.engine = config, run, names, output, engine
        self.register_buffer("_device_anchor", torch.zeros(1), persistent=False)  # .device / .dtype for callers

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_):
        from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        if given["token_type_ids"] is None and "token_type_ids" in self.names:
            given["token_type_ids"] = torch.zeros_like(input_ids)
        feeds = {n: given[n].cpu().numpy().astype(np.int64) for n in self.names}
        out = torch.from_numpy(np.ascontiguousarray(self.run(feeds), dtype=np.float32))
        cls = SequenceClassifierOutput if self.output == "logits" else BaseModelOutput
        return cls(**{self.output: out})


def _threads() -> int:
    return max(1, torch.get_num_threads())


def _onnx_runner(path: Path, output: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = _threads()
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda feeds: sess.run([output], feeds)[0]


def _openvino_runner(path: Path, int8: bool):
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": _threads(), "PERFORMANCE_HINT": "LATENCY"}
    if not int8:  # fp32 means fp32, also on CPUs where OpenVINO would pick bf16 by itself
        config["INFERENCE_PRECISION_HINT"] = "f32"
    compiled = core.compile_model(str(path), "CPU", config)
    return lambda feeds: compiled(feeds)[0]


class Bf16Model(torch.nn.Module):
    """The model with bf16 weights; float outputs come back as float32."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model.to(torch.bfloat16), model.config

    def forward(self, **kwargs):
        out = self.model(**kwargs)
        for k, v in out.items():
            if torch.is_tensor(v) and v.is_floating_point():
                out[k] = v.float()
        return out


def _split_rows(batches: list[dict]) -> list[dict]:
    """Recorded batches -> one unpadded example per row (NNCF's calibration items)."""
    rows = []
    for b in batches:
        mask = b["attention_mask"]
        for i in range(mask.shape[0]):
            n = int(mask[i].sum())
            rows.append({k: np.ascontiguousarray(v[i: i + 1, :n]) for k, v in b.items()})
    return rows


def build(model, engine: str, *, name: str, output: str, calibration: list[dict] | None = None):
    """The stand-in for ``model`` under ``engine`` and whether its export was ``created`` or ``cached``.
    ``calibration``: recorded input batches (``openvino-int8`` calibrates on them)."""
    check_engine(engine)
    if engine == "torch":
        return model, None
    if engine == "torch-bf16":
        return Bf16Model(model), None
    names = input_names(model)
    root = export_dir(model, name, engine)
    fp32 = root.parent / f"fp32-v{EXPORT_VERSION}.onnx"
    target = {"onnx": fp32, "onnx-int8": root / "model_int8.onnx", "openvino": root / "openvino.xml",
              "openvino-int8": root / "openvino_int8.xml"}[engine]
    status = "cached" if target.exists() else "created"
    if status == "created":
        if not fp32.exists():
            export_onnx(model, fp32, output)
        root.mkdir(parents=True, exist_ok=True)
        if engine == "onnx-int8":
            quantize_onnx(fp32, target)
        elif engine == "openvino":
            import openvino as ov

            ov.save_model(ov.Core().read_model(str(fp32)), str(target))
        elif engine == "openvino-int8":
            feeds = [{n: r[n] for n in names} for r in _split_rows(calibration or [])]
            if not feeds:
                raise RankstackError("openvino-int8 needs calibration inputs (the check pairs' tensors)")
            _ov_int8(fp32, target, feeds)
        log.info("engine %s: exported %s once into %s", engine, name, target)
    else:
        log.info("engine %s: reusing the export in %s", engine, target)
    run = _onnx_runner(target, output) if engine.startswith("onnx") else _openvino_runner(target, "int8" in engine)
    return ExportedModel(model.config, run, names, output, engine), {"export": status, "path": str(target)}


def _record(model) -> tuple[list[dict], Callable[[], None]]:
    """Record the keyword tensors of every call to ``model`` (numpy, int64). Wraps the instance's
    ``forward`` (sentence-transformers calls ``model.forward`` itself, past any hook)."""
    seen: list[dict] = []
    forward = model.forward

    def recording(*args, **kwargs):
        seen.append({k: v.detach().cpu().numpy().astype(np.int64) for k, v in kwargs.items()
                     if k in ("input_ids", "attention_mask", "token_type_ids") and torch.is_tensor(v)})
        return forward(*args, **kwargs)

    model.forward = recording
    return seen, lambda: model.__dict__.pop("forward", None)


def swap_engine(engine: str, get: Callable[[], torch.nn.Module], put: Callable[[torch.nn.Module], None],
                score: Callable[[], np.ndarray], *, name: str, output: str, tolerance: float | None = None,
                check: str = "refuse") -> dict:
    """Replace the transformer (``get``/``put``) with its ``engine`` stand-in, checked on the fixed pairs:
    ``score()`` scores :data:`CHECK_PAIRS` with whatever model is in place. Returns the report
    (engine, export status and path, max abs and relative differences to torch)."""
    check_engine(engine)
    if check not in ("refuse", "warn", "off"):
        raise RankstackError(f"engine_check must be refuse, warn or off, got {check!r}")
    if engine == "torch":
        return {"engine": "torch"}
    model = get()
    seen, stop = _record(model)
    try:
        ref = np.asarray(score(), dtype=np.float64)
    finally:
        stop()
    new, info = build(model, engine, name=name, output=output, calibration=seen)
    put(new)
    report = {"engine": engine, **(info or {})}
    if check == "off":
        return report
    got = np.asarray(score(), dtype=np.float64)
    diff = float(np.abs(got - ref).max())
    rel = diff / max(float(ref.max() - ref.min()), 1e-6)
    tol = DEFAULT_TOLERANCE[engine] if tolerance is None else float(tolerance)
    report.update(max_abs_diff=round(diff, 6), rel_diff=round(rel, 6), tolerance=tol)
    if rel > tol:
        msg = (f"engine {engine}: scores on the check pairs differ from torch by {diff:.4g} ({rel:.1%} of their "
               f"spread), over engine_tolerance={tol}")
        if check == "refuse":
            raise RankstackError(msg + "; use engine='torch', raise engine_tolerance, or engine_check='warn'")
        log.warning(msg)
    else:
        log.info("engine %s: check pairs within %.4f of torch (relative) (max |diff| %.3g)", engine, rel, diff)
    return report


class EncoderEngine:
    """What the encoder rerankers (dense, cross-encoder, MVP) share: ``engine=`` on the transformer
    inside them, and long documents scored chunk by chunk (``chunk_mode = "aggregate"``)."""

    chunk_mode = "aggregate"
    engine = "torch"

    def setup_engine(self, engine: str, get, put, digest: Callable[[], str], *, output: str,
                     tolerance: float | None, check: str) -> None:
        self.engine = check_engine(engine)
        # the torch weights' digest, taken before an engine replaces them (torch: read live, training changes them)
        self._weights = None if engine == "torch" else digest()
        self.engine_report = swap_engine(engine, get, put, self._check_scores, name=self.model_name, output=output,
                                         tolerance=tolerance, check=check)

    def engine_params(self) -> dict:
        return {"engine": self.engine} if self.engine != "torch" else {}
