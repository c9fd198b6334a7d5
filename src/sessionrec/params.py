"""Typed, validated parameters: one frozen dataclass per ``params.yaml`` section.

Every value is checked once, before any work starts: an unknown key names the valid keys, a wrong type or an
out-of-range value names the parameter and the allowed range. Nothing else in the library reads ``params.yaml``.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sessionrec.models import CLICKS, KINDS, NETWORK, names  # torch-free: the registry itself loads on first use
from sessionrec.sources import SOURCES


class ParamsError(ValueError):
    """A bad value or key in params.yaml; the message names the parameter."""


def _f(default, *, lo=None, hi=None, choices=None, lo_open=False, doc=""):
    meta = {"lo": lo, "hi": hi, "choices": choices, "lo_open": lo_open, "doc": doc}
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata=meta)
    return field(default=default, metadata=meta)


MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
NULLABLE_COLUMNS = ("category_code", "brand", "price")


@dataclass(frozen=True)
class SyntheticParams:
    sessions_per_month: int = _f(30000, lo=10, doc="sessions generated per month")
    n_items: int = _f(4000, lo=10, doc="products in the synthetic catalogue")
    n_categories: int = _f(150, lo=2, doc="category_ids in the synthetic catalogue")
    n_brands: int = _f(300, lo=2, doc="brands in the synthetic catalogue")
    seed: int = _f(42, lo=0, doc="generator seed")
    stream: bool = _f(False, doc="generate vectorised in chunks straight to disk (full scale); false = the "
                                 "per-session generator of the default run")


@dataclass(frozen=True)
class DataParams:
    source: str = _f("synthetic", choices=tuple(SOURCES), doc="one of sessionrec.sources.SOURCES")
    local_dir: str = _f("", doc="folder of monthly CSVs for source=local (side information for source=splits)")
    splits_dir: str = _f("", doc="folder of pre-split example files for source=splits")
    start_month: str = _f("2019-10", doc="first month, YYYY-MM")
    end_month: str = _f("2019-10", doc="last month, YYYY-MM")
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)

    def validate(self) -> None:
        for name in ("start_month", "end_month"):
            if not MONTH_RE.match(getattr(self, name)):
                raise ParamsError(f"data.{name}: expected YYYY-MM, got {getattr(self, name)!r}")
        if self.start_month > self.end_month:
            raise ParamsError(f"data.start_month {self.start_month} is after data.end_month {self.end_month}")
        if self.synthetic.n_items < 2 * self.synthetic.n_categories:
            raise ParamsError(f"data.synthetic.n_items ({self.synthetic.n_items}) must be at least 2 x "
                              f"data.synthetic.n_categories ({self.synthetic.n_categories})")
        for key in SOURCES[self.source].needs:
            if not getattr(self, key):
                raise ParamsError(f"data.{key}: required when data.source is {self.source!r}")


@dataclass(frozen=True)
class FilterEncodeParams:
    session_key: str = _f("user_session", choices=("user_session", "user_id"),
                          doc="user_session (REES46's) | user_id (cut at gaps over session_gap_minutes)")
    session_gap_minutes: float = _f(60.0, lo=0.0, hi=1e7, lo_open=True, doc="session_key=user_id: the gap that cuts")
    iterative_filter: bool = _f(False, doc="repeat min_session_events and min_item_support until stable")
    limit_to_view_event: bool = _f(True)
    drop_listwise_nulls: list = _f([], doc="columns whose missing values drop the row")
    min_products_per_session: int = _f(3, lo=1, doc="minimum distinct products per session")
    min_session_events: int = _f(1, lo=1, doc="minimum events per session (repeats count)")
    dedup_consecutive: bool = _f(True)
    min_item_support: int = _f(1, lo=1, doc="minimum events per product")
    max_session_length: int = _f(50, lo=2, doc="keep the last N events of a session")
    memory_limit: str = _f("4GB", doc="DuckDB memory limit")

    def validate(self) -> None:
        bad = [c for c in self.drop_listwise_nulls if c not in NULLABLE_COLUMNS]
        if bad:
            raise ParamsError(f"filter_encode.drop_listwise_nulls: unknown column(s) {bad}; allowed {list(NULLABLE_COLUMNS)}")
        if not re.match(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", self.memory_limit):
            raise ParamsError(f"filter_encode.memory_limit: expected e.g. '4GB', got {self.memory_limit!r}")


@dataclass(frozen=True)
class SplitParams:
    split_method: str = _f("temporal", choices=("temporal", "random", "last_days"))
    train_split: float = _f(0.8, lo=0.0, hi=1.0, lo_open=True)
    val_split: float = _f(0.1, lo=0.0, hi=1.0, lo_open=True)
    test_split: float = _f(0.1, lo=0.0, hi=1.0, lo_open=True)
    seed: int = _f(42, lo=0)
    normalization_method: str = _f("min_max", choices=("min_max", "zscore"), doc="price scaling, fitted on train")
    test_days: float = _f(1.0, lo=0.0, hi=1e5, lo_open=True, doc="last_days: sessions starting in the last N days")
    val_days: float = _f(1.0, lo=0.0, hi=1e5, lo_open=True, doc="last_days: the N days before test")

    def validate(self) -> None:
        if self.split_method == "last_days":
            return
        total = self.train_split + self.val_split + self.test_split
        if abs(total - 1.0) > 1e-6:
            raise ParamsError(f"split: train_split + val_split + test_split must be 1, got {total:g}")


@dataclass(frozen=True)
class GraphParams:
    targets: str = _f("all_prefixes", choices=("last", "all_prefixes"))
    shard_size: int = _f(4096, lo=1, doc="examples per LMDB record")


@dataclass(frozen=True)
class ModelParams:
    name: str = _f("hybrid", doc="a model of sessionrec.models.KINDS")
    lr: float = _f(1e-3, lo=0.0, hi=10.0, lo_open=True)
    weight_decay: float = _f(1e-5, lo=0.0, hi=1.0)
    dropout_rate: float = _f(0.2, lo=0.0, hi=0.95)
    batch_size: int = _f(128, lo=1, hi=1_000_000)
    epochs: int = _f(40, lo=1, hi=10_000)
    epoch_examples: int = _f(0, lo=0, doc="training examples per epoch; 0 = the whole train split")
    val_examples: int = _f(0, lo=0, doc="validation examples the choices are made on (a seeded sample); 0 = all")
    embedding_dim: int = _f(64, lo=1, hi=4096)
    hidden_dim: int = _f(64, lo=1, hi=4096)
    num_iterations: int = _f(1, lo=1, hi=16, doc="gated GNN propagation steps")
    use_scheduler: bool = _f(True)
    patience: int = _f(3, lo=1, hi=1000)
    seed: int = _f(42, lo=0)
    num_threads: int = _f(0, lo=0, hi=256, doc="torch CPU threads; 0 = OMP_NUM_THREADS, else the cores free at start")
    refit: bool = _f(True, doc="after the choice on validation, retrain it on train + validation")
    processes_per_node: int = _f(1, lo=1, hi=1024, doc="data-parallel training processes per machine (torchrun)")
    nodes: int = _f(1, lo=1, hi=10_000, doc="machines of a data-parallel run (torchrun; see sessionrec.distributed)")
    loss: str = _f("full", choices=("full", "sampled"), doc="networks' training loss (sessionrec.training.loss)")
    n_sample: int = _f(2048, lo=1, hi=10_000_000, doc="sampled loss: popularity-sampled negatives per batch")
    sample_alpha: float = _f(0.5, lo=0.0, hi=1.0, doc="sampled loss: negatives drawn by popularity ** alpha")
    logq: float = _f(1.0, lo=0.0, hi=10.0, doc="sampled loss: weight of the log-Q correction; 0 = none")
    optimizer: str = _f("adam", choices=("adam", "lazy_adam"),
                        doc="adam, or lazy_adam (sampled loss: only the product rows a batch touched are updated)")
    precision: str = _f("fp32", choices=("fp32", "bf16"),
                        doc="training steps in fp32, or under bfloat16 autocast (GPUs); scoring stays fp32")
    hybrid_nets: list = _f(["gru4rec", "srgnn", "graph_with_embeddings_and_attention"],
                           doc="hybrid: the networks blended with STAN")
    knn_k: int = _f(100, lo=1, hi=100_000, doc="session-kNN: neighbours")
    knn_sample_size: int = _f(0, lo=0, hi=10_000_000, doc="session-kNN: most recent candidates; 0 = published default")
    stan_lambda_spw: float = _f(1.02, lo=0.0, hi=1e6, lo_open=True, doc="STAN: session position decay")
    stan_lambda_snh: float = _f(5.0, lo=0.0, hi=1e6, lo_open=True, doc="STAN: neighbour recency decay, days")
    stan_lambda_inh: float = _f(2.05, lo=0.0, hi=1e6, lo_open=True, doc="STAN: item position decay in a neighbour")

    def validate(self) -> None:
        if self.name not in KINDS:
            raise ParamsError(f"model.name: unknown model {self.name!r}; available: {sorted(KINDS)}")
        if self.optimizer == "lazy_adam" and self.loss != "sampled":
            raise ParamsError("model.optimizer: lazy_adam needs model.loss: sampled (the full softmax's gradient "
                              "covers every product, so no row could be skipped)")
        nets = sorted(names(NETWORK))
        bad = [n for n in self.hybrid_nets if n not in nets]
        if bad or not self.hybrid_nets or len(set(self.hybrid_nets)) != len(self.hybrid_nets):
            raise ParamsError(f"model.hybrid_nets: expected distinct names from {nets}, got {self.hybrid_nets!r}")


@dataclass(frozen=True)
class EvaluateParams:
    top_k: list = _f([1, 5, 10, 20])
    ties: str = _f("expected", choices=("expected", "pessimistic", "optimistic"))
    batch_size: int = _f(512, lo=1, hi=1_000_000)
    test_examples: int = _f(0, lo=0, doc="test examples scored (a seeded sample); 0 = all")

    def validate(self) -> None:
        if not self.top_k or any((not isinstance(k, int)) or isinstance(k, bool) or k < 1 for k in self.top_k):
            raise ParamsError(f"evaluate.top_k: expected a list of positive integers, got {self.top_k!r}")
        if 20 not in self.top_k:
            raise ParamsError("evaluate.top_k: must contain 20 (early stopping and the reports use R@20 / MRR@20)")


@dataclass(frozen=True)
class BenchmarkParams:
    models: list = _f(["pop", "sknn", "vsknn", "stan", "gru4rec", "srgnn", "graph_with_embeddings",
                       "graph_with_embeddings_and_attention", "graph_with_embeddings_and_attentional_aggregation"],
                      doc="models compared by the benchmark stage (the hybrid has its own stage)")
    seeds: list = _f([1, 2, 3], doc="seeds per model")
    refit: bool = _f(False, doc="model.refit for every benchmark run")

    def validate(self) -> None:
        singles = sorted(names(NETWORK, CLICKS))
        bad = [m for m in self.models if m not in singles]
        if bad or not self.models:
            raise ParamsError(f"benchmark.models: unknown model(s) {bad}; available: {singles} (the hybrid is "
                              "benchmarked by its own stage, from these models' runs)")
        if not self.seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in self.seeds):
            raise ParamsError(f"benchmark.seeds: expected a list of non-negative integers, got {self.seeds!r}")


@dataclass(frozen=True)
class ServeParams:
    host: str = _f("127.0.0.1", doc="address the service listens on")
    port: int = _f(8000, lo=1, hi=65535)
    workers: int = _f(1, lo=1, hi=64, doc="uvicorn worker processes (each loads the model)")
    max_sessions: int = _f(100_000, lo=1, hi=100_000_000, doc="live sessions kept; the least recently used go first")
    session_ttl_seconds: float = _f(1800.0, lo=0.0, hi=1e7, lo_open=True, doc="a live session idle this long expires")
    max_events: int = _f(200, lo=1, hi=100_000, doc="clicks per session or request")
    max_k: int = _f(100, lo=1, hi=10_000, doc="largest k a request may ask for")
    max_body_bytes: int = _f(65536, lo=256, hi=100_000_000, doc="largest request body")
    visitor_history: bool = _f(True, doc="a returning visitor's empty session is answered from their history")


# Published protocols: ``protocol: NAME`` overrides these keys (the rest of params.yaml still applies). ``custom``
# (the default) uses params.yaml as written.
PROTOCOLS = {
    "custom": {},
    # the original design: Kaggle user_session, views only, rows missing category/brand/price dropped, sessions of at
    # least 3 distinct products, the last product as the target, temporal 80/10/10
    "seed": {"filter_encode": {"limit_to_view_event": True, "drop_listwise_nulls": ["category_code", "brand", "price"],
                               "min_products_per_session": 3},
             "split": {"split_method": "temporal", "train_split": 0.8, "val_split": 0.1, "test_split": 0.1},
             "graphs": {"targets": "last"}},
    # the reference SR-GNN preprocessing of DIGINETICA (data.local_dir: the folder of train-item-views.csv), every
    # prefix an example; validation carved from the end of its train
    "srgnn_diginetica": {"data": {"source": "diginetica"}, "graphs": {"targets": "all_prefixes"}},
    # the official GRU4Rec's REES46 protocol (Hidasi & Czapp 2023, rees46_preproc.py): views only, sessions cut from
    # user_id at gaps over filter_encode.session_gap_minutes (60), consecutive repeats removed, sessions of >= 2
    # events (a repeat left by a dropped item counts, as there) and items of >= 5 events until stable, sessions
    # starting in the last split.test_days (1) as test and in the split.val_days (1) before as validation, training
    # events before that cut, every position predicted. One bound: sessions longer than 200 events keep their last
    # 200 (each example stores its whole prefix).
    "gru4rec_rees46": {"filter_encode": {"session_key": "user_id", "limit_to_view_event": True,
                                         "drop_listwise_nulls": [], "dedup_consecutive": True, "iterative_filter": True,
                                         "min_item_support": 5, "min_session_events": 2,
                                         "min_products_per_session": 1, "max_session_length": 200},
                       "split": {"split_method": "last_days"}, "graphs": {"targets": "all_prefixes"}},
}


def apply_protocol(raw: dict) -> dict:
    """``raw`` with the preset of ``raw["protocol"]`` merged over it (presets win)."""
    name = raw.get("protocol", "custom")
    if name not in PROTOCOLS:
        raise ParamsError(f"protocol: {name!r} is not one of {list(PROTOCOLS)}")
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for section, values in PROTOCOLS[name].items():
        if out.get(section) is not None and not isinstance(out[section], dict):
            raise ParamsError(f"{section}: expected a mapping, got {out[section]!r}")
        out[section] = {**(out.get(section) or {}), **values}
    return out


@dataclass(frozen=True)
class Params:
    protocol: str = _f("custom", choices=tuple(PROTOCOLS), doc="a published protocol preset, or custom")
    data: DataParams = field(default_factory=DataParams)
    filter_encode: FilterEncodeParams = field(default_factory=FilterEncodeParams)
    split: SplitParams = field(default_factory=SplitParams)
    graphs: GraphParams = field(default_factory=GraphParams)
    model: ModelParams = field(default_factory=ModelParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    benchmark: BenchmarkParams = field(default_factory=BenchmarkParams)
    serve: ServeParams = field(default_factory=ServeParams)

    def validate(self) -> None:
        missing = [n for n in self.model.hybrid_nets if n not in self.benchmark.models]
        if missing:
            raise ParamsError(f"model.hybrid_nets: {missing} not in benchmark.models, whose runs the benchmark's "
                              "hybrid reuses")


def _coerce(value, typ, name: str):
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ParamsError(f"{name}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ParamsError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ParamsError(f"{name}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, bool):
            raise ParamsError(f"{name}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ParamsError(f"{name}: expected a number, got {value!r}")
    if typ is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str):
            return value
        raise ParamsError(f"{name}: expected a string, got {value!r}")
    if typ is list:
        if value is None:
            return []
        if isinstance(value, list):
            return value
        raise ParamsError(f"{name}: expected a list, got {value!r}")
    raise TypeError(typ)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def build(cls, raw, prefix: str):
    """Build dataclass ``cls`` from the mapping ``raw``, validating keys, types and ranges."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{prefix or 'params.yaml'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        valid = ", ".join(_join(prefix, k) for k in fields)
        raise ParamsError(f"unknown parameter(s) {', '.join(_join(prefix, k) for k in unknown)}; valid keys: {valid}")
    kwargs = {}
    for name, f in fields.items():
        full = _join(prefix, name)
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            kwargs[name] = build(typ, raw.get(name), full)
            continue
        if name not in raw:
            continue
        value = _coerce(raw[name], typ, full)
        meta = f.metadata
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise ParamsError(f"{full}: {value!r} is not one of {list(meta['choices'])}")
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
            raise ParamsError(f"{full}: {value!r} is out of range; allowed {'(' if meta.get('lo_open') else '['}{lo}, {hi if hi is not None else 'inf'}]")
        if hi is not None and value > hi:
            raise ParamsError(f"{full}: {value!r} is out of range; allowed [{lo}, {hi}]")
        kwargs[name] = value
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def load_params(path: str | Path = "params.yaml", section: str | None = None):
    """Read and validate ``params.yaml``; return all sections, or just ``section``.

    The whole file is validated even when one section is asked for, so a typo anywhere fails every stage early.
    """
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {raw!r}")
    params = build(Params, apply_protocol(raw), "")
    return getattr(params, section) if section else params


def params_from_dict(raw: dict) -> Params:
    return build(Params, apply_protocol(raw), "")
