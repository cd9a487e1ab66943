"""AdamMultilr: Keras 3 Adam with regex learning-rate groups (TensorFlow backend; the Keras and TF
internals it relies on are in `keras_compat` and `tf_compat`)."""

from capreolus_opt.optimizer.adam_multilr import AdamMultilr
from capreolus_opt.optimizer.groups import DEFAULT_GROUP, GroupSpec, parse_pattern_lrs
from capreolus_opt.optimizer.regroup import RegroupError, RegroupReport, restore_regrouped
from capreolus_opt.optimizer.table import GroupRow, GroupTable

__all__ = [
    "DEFAULT_GROUP",
    "AdamMultilr",
    "GroupRow",
    "GroupSpec",
    "GroupTable",
    "RegroupError",
    "RegroupReport",
    "parse_pattern_lrs",
    "restore_regrouped",
]
