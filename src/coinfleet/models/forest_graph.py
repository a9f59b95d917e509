"""scikit-learn forests (RandomForest, ExtraTrees, a single tree) as ONNX graphs, built with numpy.

skl2onnx walks every node in Python, several calls per node, and builds every attribute as a Python
list: a 2000-tree forest of 1.4M nodes took minutes, and its float32 sums missed the check, so it
converted a second time in double. Here the node arrays of all trees are concatenated with numpy and
go into one `TreeEnsembleClassifier` (ai.onnx.ml 3) in one pass, always in double precision: the float
input is cast to double, thresholds and leaf weights are double tensors and the trees' votes are summed
in double, so the sum over thousands of trees no longer drifts. The input stays float because
sklearn's trees compare `(float32) x <= (float64) threshold`; the graph compares exactly that.
Each leaf's weight is its class-1 share over the number of trees (ONNX Runtime gives class 0 as
1 − p), and NaN goes down the side each node chose at fit time (`missing_go_to_left`), as in sklearn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from coinfleet.errors import CoinfleetError

#: opset of the graph and the ai.onnx.ml opset its tree operator comes from
OPSET = {"": 18, "ai.onnx.ml": 3}
_LEAF = -1  # sklearn's child index of a leaf


class ForestGraphError(CoinfleetError):
    """The estimator is not a forest this builder handles."""


def is_sklearn_forest(estimator: Any) -> bool:
    """A fitted sklearn tree classifier (or an ensemble of them averaged) with one output."""
    return bool(_trees(estimator)) and getattr(estimator, "n_outputs_", 1) == 1


def forest_graph(estimator: Any, n_features: int) -> bytes:
    """The forest as an ONNX graph: float input [N, n_features], float probabilities [N, 2]."""
    from onnx import AttributeProto, TensorProto, helper, numpy_helper

    trees = _trees(estimator)
    if not trees or getattr(estimator, "n_outputs_", 1) != 1:
        raise ForestGraphError(f"{type(estimator).__name__} is not a one-output sklearn tree classifier")
    classes = np.asarray(getattr(estimator, "classes_", []))
    if classes.tolist() != [0, 1]:
        raise ForestGraphError(f"the forest must be a 0/1 classifier; its classes: {classes.tolist()}")
    parts = [_tree_arrays(tree, index, len(trees), n_features) for index, tree in enumerate(trees)]
    nodes = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    leaf = nodes["leaf"]
    ensemble = helper.make_node(
        "TreeEnsembleClassifier",
        ["input_double"],
        ["label", "probabilities"],
        domain="ai.onnx.ml",
        name="forest",
        classlabels_int64s=[0, 1],
        post_transform="NONE",
    )
    ints = {
        "nodes_treeids": nodes["tree"],
        "nodes_nodeids": nodes["node"],
        "nodes_featureids": np.where(leaf, 0, nodes["feature"]),
        "nodes_truenodeids": np.where(leaf, 0, nodes["left"]),
        "nodes_falsenodeids": np.where(leaf, 0, nodes["right"]),
        "nodes_missing_value_tracks_true": np.where(leaf, 0, nodes["missing_left"]),
        "class_treeids": nodes["tree"][leaf],
        "class_nodeids": nodes["node"][leaf],
        "class_ids": np.ones(int(leaf.sum()), dtype=np.int64),
    }
    for name, values in ints.items():
        ensemble.attribute.append(_ints(name, values))
    modes = AttributeProto(name="nodes_modes", type=AttributeProto.STRINGS)
    modes.strings.extend(np.where(leaf, b"LEAF", b"BRANCH_LEQ").tolist())
    ensemble.attribute.append(modes)
    tensors = {
        "nodes_values_as_tensor": np.where(leaf, 0.0, nodes["threshold"]),
        "class_weights_as_tensor": nodes["weight"][leaf],
    }
    for name, values in tensors.items():
        tensor = numpy_helper.from_array(np.ascontiguousarray(values, dtype=np.float64), name=name)
        ensemble.attribute.append(helper.make_attribute(name, tensor))
    cast = helper.make_node("Cast", ["input"], ["input_double"], to=TensorProto.DOUBLE, name="to_double")
    graph = helper.make_graph(
        [cast, ensemble],
        "coinfleet_forest",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in OPSET.items()],
        producer_name="coinfleet",
    )
    model.ir_version = 10
    return bytes(model.SerializeToString())


def _trees(estimator: Any) -> list[Any]:
    """The trees whose average the estimator predicts, or [] for any other estimator (bagging picks
    feature subsets per tree, gradient boosting adds raw scores: neither is an average of trees)."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    if isinstance(estimator, DecisionTreeClassifier):
        return [estimator.tree_]
    if isinstance(estimator, RandomForestClassifier | ExtraTreesClassifier):
        return [member.tree_ for member in estimator.estimators_]
    return []


def _tree_arrays(tree: Any, index: int, n_trees: int, n_features: int) -> dict[str, npt.NDArray[Any]]:
    """One tree's nodes as flat arrays; every property of a Tree is read once (each read builds a view)."""
    count = int(tree.node_count)
    left = np.asarray(tree.children_left, dtype=np.int64)
    right = np.asarray(tree.children_right, dtype=np.int64)
    leaf = left == _LEAF
    feature = np.asarray(tree.feature, dtype=np.int64)
    if np.any((feature[~leaf] < 0) | (feature[~leaf] >= n_features)):
        raise ForestGraphError(f"tree {index} splits on a feature outside 0..{n_features - 1}")
    value = np.asarray(tree.value, dtype=np.float64)[:, 0, :]
    if value.shape[1] != 2:
        raise ForestGraphError(f"tree {index} has {value.shape[1]} classes; a 0/1 classifier has 2")
    totals = value.sum(axis=1)
    share = np.divide(value[:, 1], totals, out=np.zeros(count), where=totals > 0)
    missing = getattr(tree, "missing_go_to_left", None)
    return {
        "tree": np.full(count, index, dtype=np.int64),
        "node": np.arange(count, dtype=np.int64),
        "leaf": leaf,
        "feature": feature,
        "left": left,
        "right": right,
        "threshold": np.asarray(tree.threshold, dtype=np.float64),
        "missing_left": np.zeros(count, np.int64) if missing is None else np.asarray(missing, np.int64),
        "weight": share / n_trees,
    }


def _ints(name: str, values: npt.NDArray[Any]) -> Any:
    from onnx import AttributeProto

    attribute = AttributeProto(name=name, type=AttributeProto.INTS)
    attribute.ints.extend(np.asarray(values, dtype=np.int64).tolist())
    return attribute
