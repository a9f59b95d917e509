"""Layout checks of XGBoost and LightGBM files, run before their native parsers see the bytes.

XGBoost's and LightGBM's native parsers trust the declared sizes and links in a file: a cut or corrupted
file crashed the whole process in tests. So their files are checked here first (UBJSON lengths, tree
arrays, child links, feature indices) and refused with ModelLoadError.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from coinfleet.errors import ModelLoadError


def xgboost_document(data: bytes) -> Any:
    """The model as Python values, from JSON or UBJSON."""
    if not data.startswith(b"{"):
        raise ModelLoadError("not a valid xgboost-json model: neither XGBoost JSON nor UBJSON")
    if data[1:2] in (b'"', b"}", b" ", b"\n", b"\r", b"\t"):
        return json.loads(data)
    reader = _UbjReader(data)
    document = reader.value(reader.take(1))
    if reader.pos != len(data):
        raise ModelLoadError("not a valid xgboost-json model: trailing bytes after the UBJSON document")
    return document


def check_xgboost_model(document: Any) -> None:
    """Refuse a model whose trees disagree with themselves (XGBoost trusts them and crashes at predict)."""
    try:
        learner = document["learner"]
        n_features = int(learner["learner_model_param"]["num_feature"])
        booster = learner["gradient_booster"]
        if booster["name"] != "gbtree":
            raise ModelLoadError(f"XGBoost booster is {booster['name']!r}; coinfleet loads gbtree models")
        model = booster["model"]
        trees = model["trees"]
        groups = [int(group) for group in model["tree_info"]]
        if int(model["gbtree_model_param"]["num_trees"]) != len(trees) or groups != [0] * len(trees):
            raise ModelLoadError(
                "XGBoost trees do not all belong to one binary output (tree_info / num_trees); "
                "coinfleet needs a binary classifier"
            )
        for index, tree in enumerate(trees):
            _check_xgboost_tree(index, tree, n_features)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelLoadError(f"not a valid xgboost-json model: missing or malformed field {exc}") from exc


def _check_xgboost_tree(index: int, tree: Any, n_features: int) -> None:
    n = int(tree["tree_param"]["num_nodes"])
    if tree["id"] != index or n < 1 or any(np.shape(tree[name]) != (n,) for name in _XGBOOST_NODE_ARRAYS):
        raise ModelLoadError(f"not a valid xgboost-json model: tree {index} has arrays of the wrong size")
    left, right, parents, features, split_type = (
        np.asarray(tree[name], dtype=np.int64) for name in _XGBOOST_LINKS
    )
    node, inner = np.arange(n), left != -1
    # children come after their parent, so links can neither leave the tree nor loop
    links_ok = np.all(inner == (right != -1)) and not np.any(
        inner & ((left <= node) | (left >= n) | (right <= node) | (right >= n))
    )
    expected_parents = np.full(n, _XGBOOST_ROOT_PARENT)
    if links_ok:
        expected_parents[left[inner]] = node[inner]
        expected_parents[right[inner]] = node[inner]
    problems = (
        not links_ok,
        int(tree["tree_param"]["num_deleted"]) == 0 and np.any(parents != expected_parents),
        np.any(inner & ((features < 0) | (features >= n_features))),
        np.any(split_type != 0) or int(tree["tree_param"]["size_leaf_vector"]) > 1,
    )
    if any(problems):
        raise ModelLoadError(
            f"not a valid xgboost-json model: tree {index} has bad links, parents, features or split types"
        )


#: per-node arrays of an XGBoost tree, and those the link check reads as integers
_XGBOOST_NODE_ARRAYS = (
    "left_children",
    "right_children",
    "parents",
    "split_indices",
    "split_conditions",
    "split_type",
    "default_left",
    "base_weights",
)
_XGBOOST_LINKS = ("left_children", "right_children", "parents", "split_indices", "split_type")
#: the parent XGBoost records for a root node
_XGBOOST_ROOT_PARENT = 2**31 - 1
#: UBJSON value markers with a fixed payload size in bytes
_UBJ_FIXED = {
    b"Z": 0,
    b"N": 0,
    b"T": 0,
    b"F": 0,
    b"i": 1,
    b"U": 1,
    b"C": 1,
    b"I": 2,
    b"l": 4,
    b"d": 4,
    b"L": 8,
    b"D": 8,
}
#: numpy dtype of each UBJSON number marker (big-endian)
_UBJ_DTYPES = {b"i": ">i1", b"U": ">u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}


class _UbjReader:
    """A small UBJSON decoder that checks every declared length against the data (XGBoost's does not)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelLoadError("not a valid xgboost-json model: UBJSON cut short or a length is corrupt")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def peek(self) -> bytes:
        return self.data[self.pos : self.pos + 1]

    def integer(self, marker: bytes) -> int:
        if marker not in _UBJ_DTYPES or marker in (b"d", b"D"):
            raise ModelLoadError(f"not a valid xgboost-json model: UBJSON length marker {marker!r}")
        return int(self.number(marker))

    def number(self, marker: bytes) -> Any:
        return np.frombuffer(self.take(_UBJ_FIXED[marker]), dtype=_UBJ_DTYPES[marker])[0].item()

    def value(self, marker: bytes) -> Any:
        if marker in _UBJ_DTYPES:
            return self.number(marker)
        if marker in (b"S", b"H"):
            return self.take(self.integer(self.take(1))).decode("utf-8")
        if marker in (b"[", b"{"):
            return self.container(marker == b"{")
        if marker in (b"T", b"F"):
            return marker == b"T"
        if marker in (b"Z", b"N"):
            return None
        if marker == b"C":
            return self.take(1).decode("latin-1")
        raise ModelLoadError(f"not a valid xgboost-json model: unknown UBJSON marker {marker!r}")

    def container(self, is_object: bool) -> Any:
        kind = self.take(2)[1:] if self.peek() == b"$" else None
        count = self.integer(self.take(2)[1:]) if self.peek() == b"#" else None
        if count is None and kind is not None:
            raise ModelLoadError("not a valid xgboost-json model: typed UBJSON container without a count")
        if not is_object and kind in _UBJ_DTYPES and count is not None:
            return np.frombuffer(self.take(count * _UBJ_FIXED[kind]), dtype=_UBJ_DTYPES[kind])
        items: list[tuple[str, Any]] = []
        while (len(items) < count) if count is not None else (self.peek() != (b"}" if is_object else b"]")):
            key = self.take(self.integer(self.take(1))).decode("utf-8") if is_object else ""
            items.append((key, self.value(kind if kind is not None else self.take(1))))
        if count is None:
            self.take(1)
        return dict(items) if is_object else [item for _, item in items]


def lightgbm_trees(data: bytes) -> bytes:
    """The model string up to `end of trees`, its layout checked first."""
    # LightGBM's parser jumps to each tree by the byte counts in tree_sizes and crashes the process on a cut
    # or garbled file; the sections after the trees only describe training and crash it when cut, so drop them
    start = data.find(b"\nTree=") + 1
    end = data.find(b"\nend of trees", start) + 1
    if not start or not end:
        raise ModelLoadError(
            "not a valid lightgbm-text model: no trees or no 'end of trees' (file cut short?)"
        )
    header = _key_values(data[:start].split(b"\n"))
    sizes = [int(size) for size in header.get(b"tree_sizes", [])]
    n_features = int(header.get(b"max_feature_idx", [b"-1"])[0]) + 1
    offset = start
    for index, size in enumerate(sizes):
        if size <= 0 or not data.startswith(b"Tree=", offset) or offset + size > end:
            break
        _check_lightgbm_tree(index, _key_values(data[offset : offset + size].split(b"\n")[1:]), n_features)
        offset += size
    if not sizes or offset != end:
        raise ModelLoadError(
            "not a valid lightgbm-text model: its trees do not match tree_sizes (file cut short?)"
        )
    return data[: end + len(b"end of trees\n")]


def _check_lightgbm_tree(index: int, tree: dict[bytes, list[bytes]], n_features: int) -> None:
    """Refuse a tree whose fields disagree (LightGBM trusts them and aborts the process)."""
    if not all(_NUMBER.fullmatch(value) for values in tree.values() for value in values):
        problems = ["a value that is not a plain number"]
    elif b"num_leaves" not in tree or b"num_cat" not in tree:
        problems = ["no num_leaves / num_cat"]
    else:
        problems = _lightgbm_tree_problems(tree, int(float(tree[b"num_leaves"][0])), n_features)
    if problems:
        raise ModelLoadError(f"not a valid lightgbm-text model: tree {index} has {', '.join(problems)}")


def _lightgbm_tree_problems(tree: dict[bytes, list[bytes]], leaves: int, n_features: int) -> list[str]:
    categories = int(float(tree[b"num_cat"][0]))
    expected = {name: leaves - 1 for name in _LIGHTGBM_SPLIT_ARRAYS}
    expected.update({name: leaves for name in _LIGHTGBM_LEAF_ARRAYS})
    required = _LIGHTGBM_REQUIRED if leaves > 1 else (b"leaf_value",)
    if categories:
        expected[b"cat_boundaries"] = categories + 1
        required = (*required, b"cat_boundaries", b"cat_threshold")
    problems = [f"no {name.decode()}" for name in required if name not in tree]
    problems += [
        f"a wrong number of {name.decode()}"
        for name, n in expected.items()
        if name in tree and len(tree[name]) != n
    ]
    children = [float(child) for name in (b"left_child", b"right_child") for child in tree.get(name, [])]
    if leaves < 1 or categories < 0 or any(not -leaves <= child <= leaves - 2 for child in children):
        problems.append("bad num_leaves / num_cat / child links")
    if any(not 0 <= float(feature) < n_features for feature in tree.get(b"split_feature", [])):
        problems.append("a split on a feature it does not have")
    return problems


def _key_values(lines: list[bytes]) -> dict[bytes, list[bytes]]:
    """`key=v1 v2 …` lines split the way LightGBM splits them (on spaces only)."""
    pairs = (line.split(b"=", 1) for line in lines if b"=" in line)
    return {key: [value for value in values.split(b" ") if value] for key, values in pairs}


#: a number as LightGBM writes it (Python's float() also takes "1_0" or "Infinity", which LightGBM aborts on)
_NUMBER = re.compile(rb"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|-?inf|nan")
#: per-split and per-leaf arrays of a LightGBM tree, and those a tree with splits must have
_LIGHTGBM_SPLIT_ARRAYS = (
    b"split_feature",
    b"split_gain",
    b"threshold",
    b"decision_type",
    b"left_child",
    b"right_child",
    b"internal_value",
    b"internal_weight",
    b"internal_count",
)
_LIGHTGBM_LEAF_ARRAYS = (b"leaf_value", b"leaf_weight", b"leaf_count")
_LIGHTGBM_REQUIRED = (b"split_feature", b"threshold", b"left_child", b"right_child", b"leaf_value")
