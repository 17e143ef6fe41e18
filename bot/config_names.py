"""The case of names in a config: the environment's names are case-insensitive (pydantic lower-cases
them), so a TOML document is lower-cased to merge with them and, once every source is merged,
underlyings and currencies become upper case and account names lower case. Keys that belong to
someone else (ccxt options, URLs, symbols) keep their case."""

from __future__ import annotations

from typing import Any


def canonical_names(data: Any) -> Any:
    """The merged sources with canonical names: underlyings upper case, accounts lower case."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    if isinstance(data.get("hedge"), dict):
        data["hedge"] = {str(k).upper(): _lower_hedge(v) for k, v in data["hedge"].items()}
    if isinstance(data.get("accounts"), dict):
        data["accounts"] = {
            str(k).lower(): _upper_keys_of(v, "paper_balances") for k, v in data["accounts"].items()
        }
    if isinstance(data.get("positions"), list):
        data["positions"] = [_lower_account(p) for p in data["positions"]]
    if isinstance(data.get("sim"), dict):
        data["sim"] = _upper_keys_of(data["sim"], "underlyings", "balances")
    return data


def _upper_keys_of(section: Any, *fields: str) -> Any:
    """Currency and underlying names are upper case, whichever case the source used."""
    if not isinstance(section, dict):
        return section
    out = dict(section)
    for f in fields:
        if isinstance(out.get(f), dict):
            out[f] = {str(k).upper(): v for k, v in out[f].items()}
    return out


def _lower_hedge(v: Any) -> Any:
    v = _lower_account(v)
    if isinstance(v, dict) and isinstance(v.get("candidates"), list):
        return {**v, "candidates": [_lower_account(c) for c in v["candidates"]]}
    return v


def _lower_account(v: Any) -> Any:
    if isinstance(v, dict) and isinstance(v.get("account"), str):
        return {**v, "account": v["account"].lower()}
    return v


# Sub-trees whose keys belong to someone else (ccxt options, urls, symbols) and keep their case:
# a lower-cased symbol would never match, and its position limit would silently not apply.
_CASE_KEPT = frozenset({"ccxt_options", "urls", "max_position_contracts", "funding_rates"})


def lower_keys(data: Any) -> Any:
    """Lower-case the keys of a TOML document so it merges with environment overrides, whose
    names the environment source lower-cases."""
    if isinstance(data, dict):
        return {
            str(k).lower(): (v if str(k).lower() in _CASE_KEPT else lower_keys(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [lower_keys(v) for v in data]
    return data
