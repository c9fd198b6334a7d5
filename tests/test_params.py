import dataclasses
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from sessionrec.params import Params, ParamsError, load_params, params_from_dict


def flat_keys(d: dict, prefix: str = "") -> set:
    return {k for key, v in d.items() for k in (flat_keys(v, f"{prefix}{key}.") if isinstance(v, dict)
                                                  else [f"{prefix}{key}"])}


def test_params_yaml_is_the_dataclass_defaults_key_for_key():
    """One source of truth: params.yaml writes out every key, and each value equals the dataclass default, so a
    default changed in one place and not the other fails here."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    defaults = dataclasses.asdict(Params())
    assert flat_keys(raw) == flat_keys(defaults)
    assert dataclasses.asdict(load_params(ROOT / "params.yaml")) == defaults


def test_validating_params_imports_no_torch():
    code = ("import sys; from sessionrec.params import load_params; load_params('params.yaml'); "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_model_kinds_agree_with_the_registry():
    from sessionrec.models import KINDS, REGISTRY

    assert {n: c.kind for n, c in REGISTRY.items()} == KINDS


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ParamsError, match=r"model\.lerning_rate.*valid keys: .*model\.lr"):
        params_from_dict({"model": {"lerning_rate": 0.1}})


def test_out_of_range_names_param_and_range():
    with pytest.raises(ParamsError, match=r"model\.dropout_rate: 1\.5 is out of range; allowed \[0\.0, 0\.95\]"):
        params_from_dict({"model": {"dropout_rate": 1.5}})
    with pytest.raises(ParamsError, match=r"model\.lr.*out of range"):
        params_from_dict({"model": {"lr": 0}})
    with pytest.raises(ParamsError, match=r"model\.optimizer: lazy_adam needs model\.loss: sampled"):
        params_from_dict({"model": {"optimizer": "lazy_adam"}})
    params_from_dict({"model": {"optimizer": "lazy_adam", "loss": "sampled"}})


def test_unknown_model_name():
    with pytest.raises(ParamsError, match=r"model\.name: unknown model 'gru5rec'; available: \["):
        params_from_dict({"model": {"name": "gru5rec"}})
    with pytest.raises(ParamsError, match=r"model\.hybrid_nets: expected distinct names from \[.*'srgnn'"):
        params_from_dict({"model": {"hybrid_nets": ["gru4rec", "stan"]}})
    with pytest.raises(ParamsError, match=r"model\.hybrid_nets"):
        params_from_dict({"model": {"hybrid_nets": ["gru4rec", "gru4rec"]}})
    with pytest.raises(ParamsError, match=r"benchmark\.models: unknown model\(s\) \['hybrid'\]"):
        params_from_dict({"benchmark": {"models": ["pop", "hybrid"]}})


def test_yaml11_exponent_string_is_coerced(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("model:\n  lr: 1e-4\n  weight_decay: 1e-6\n")
    p = load_params(f)
    assert p.model.lr == pytest.approx(1e-4) and isinstance(p.model.lr, float)


def test_wrong_type_and_choices():
    with pytest.raises(ParamsError, match=r"model\.batch_size: expected an integer"):
        params_from_dict({"model": {"batch_size": "big"}})
    with pytest.raises(ParamsError, match=r"split\.split_method: 'uuid' is not one of"):
        params_from_dict({"split": {"split_method": "uuid"}})
    with pytest.raises(ParamsError, match="must be 1"):
        params_from_dict({"split": {"train_split": 0.9, "val_split": 0.1, "test_split": 0.1}})
    with pytest.raises(ParamsError, match="data.start_month"):
        params_from_dict({"data": {"start_month": "2019-13"}})
    with pytest.raises(ParamsError, match=r"data\.synthetic\.n_items \(10\) must be at least 2 x"):
        params_from_dict({"data": {"synthetic": {"n_items": 10, "n_categories": 20}}})
    with pytest.raises(ParamsError, match="drop_listwise_nulls"):
        params_from_dict({"filter_encode": {"drop_listwise_nulls": ["user_id"]}})


def test_protocol_presets_override_the_keys_they_name():
    from sessionrec.params import PROTOCOLS, params_from_dict

    base = params_from_dict({"filter_encode": {"min_products_per_session": 2}, "graphs": {"targets": "all_prefixes"}})
    seed = params_from_dict({"protocol": "seed", "filter_encode": {"min_products_per_session": 2},
                             "graphs": {"targets": "all_prefixes"}, "model": {"lr": 0.01}})
    assert base.filter_encode.min_products_per_session == 2 and base.graphs.targets == "all_prefixes"
    assert seed.filter_encode.min_products_per_session == 3 and seed.graphs.targets == "last"
    assert seed.filter_encode.drop_listwise_nulls == ["category_code", "brand", "price"]
    assert seed.model.lr == 0.01  # keys the preset does not name stay as written
    with pytest.raises(ParamsError, match="data.local_dir: required when data.source is 'diginetica'"):
        params_from_dict({"protocol": "srgnn_diginetica"})
    with pytest.raises(ParamsError, match="protocol: 'gru4rec' is not one of"):
        params_from_dict({"protocol": "gru4rec"})
    assert set(PROTOCOLS) >= {"custom", "seed", "srgnn_diginetica"}
